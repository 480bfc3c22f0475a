package wbxml

// libwbxmlNames lists the tags whose name in libwbxml 0.11.8's ActiveSync
// table (Debian libwbxml2-utils, `wbxml2xml -l ACTIVESYNC`) differs from
// MS-ASWBXML. TestLibwbxmlTagTable checks every entry against the real
// binary, so the list is complete and exact.
var libwbxmlNames = map[Tag]string{
	ContactsAssistantPhoneNumber:          "AssistantTelephoneNumber",
	ContactsBusinessAddressCity:           "BusinessCity",
	ContactsBusinessAddressCountry:        "BusinessCountry",
	ContactsBusinessAddressPostalCode:     "BusinessPostalCode",
	ContactsBusinessAddressState:          "BusinessState",
	ContactsBusinessAddressStreet:         "BusinessStreet",
	ContactsHomeAddressCity:               "HomeCity",
	ContactsHomeAddressCountry:            "HomeCountry",
	ContactsHomeAddressPostalCode:         "HomePostalCode",
	ContactsHomeAddressState:              "HomeState",
	ContactsHomeAddressStreet:             "HomeStreet",
	ContactsOtherAddressCity:              "OtherCity",
	ContactsOtherAddressCountry:           "OtherCountry",
	ContactsOtherAddressPostalCode:        "OtherPostalCode",
	ContactsOtherAddressState:             "OtherState",
	ContactsOtherAddressStreet:            "OtherStreet",
	EmailAtt0Id:                           "AttOId",
	EmailReplyTo:                          "Reply-To",
	EmailDtStamp:                          "DTStamp",
	EmailType:                             "Recurrence_Type",
	EmailUntil:                            "Recurrence_Until",
	EmailOccurrences:                      "Recurrence_Occurrences",
	EmailInterval:                         "Recurrence_Interval",
	EmailDayOfWeek:                        "Recurrence_DayOfWeek",
	EmailDayOfMonth:                       "Recurrence_DayOfMonth",
	EmailWeekOfMonth:                      "Recurrence_WeekOfMonth",
	EmailMonthOfYear:                      "Recurrence_MonthOfYear",
	CalendarTimezone:                      "TimeZone",
	CalendarEmail:                         "Attendee_Email",
	CalendarName:                          "Attendee_Name",
	CalendarCompressedRTF:                 "Compressed_RTF",
	CalendarDtStamp:                       "DTStamp",
	CalendarDeleted:                       "Exception_Deleted",
	CalendarExceptionStartTime:            "Exception_StartTime",
	CalendarOrganizerEmail:                "Organizer_Email",
	CalendarOrganizerName:                 "Organizer_Name",
	CalendarType:                          "Recurrence_Type",
	CalendarUntil:                         "Recurrence_Until",
	CalendarOccurrences:                   "Recurrence_Occurrences",
	CalendarInterval:                      "Recurrence_Interval",
	CalendarDayOfWeek:                     "Recurrence_DayOfWeek",
	CalendarDayOfMonth:                    "Recurrence_DayOfMonth",
	CalendarWeekOfMonth:                   "Recurrence_WeekOfMonth",
	CalendarMonthOfYear:                   "Recurrence_MonthOfYear",
	CalendarAttendeeStatus:                "Attendee_Status",
	CalendarAttendeeType:                  "Attendee_Type",
	TasksUtcDueDate:                       "UTCDueDate",
	TasksType:                             "Recurrence_Type",
	TasksStart:                            "Recurrence_Start",
	TasksUntil:                            "Recurrence_Until",
	TasksOccurrences:                      "Recurrence_Occurrences",
	TasksInterval:                         "Recurrence_Interval",
	TasksDayOfMonth:                       "Recurrence_DayOfMonth",
	TasksDayOfWeek:                        "Recurrence_DayOfWeek",
	TasksWeekOfMonth:                      "Recurrence_WeekOfMonth",
	TasksMonthOfYear:                      "Recurrence_MonthOfYear",
	TasksRegenerate:                       "Recurrence_Regenerate",
	TasksDeadOccur:                        "Recurrence_DeadOccur",
	TasksUtcStartDate:                     "UTCStartDate",
	ProvisionRequireStorageCardEncryption: "DeviceEncryptionEnabled",
	SettingsRightsManagementInformation:   "ihsManagementInformation", // sic: a typo in libwbxml
	ComposeMailMime:                       "MIME",
	ComposeMailName:                       "ForwardeeName",
	ComposeMailEmail:                      "ForwardeeEmail",
	RightsManagementOwner:                 "RMOwner",
	RightsManagementRemoveRightsManagementProtection: "RemoveRightsManagementDistribution",
}

// libwbxmlMissing reports the 16.x tags libwbxml 0.11.8 does not know: it
// decodes them as <unknown> and cannot encode them. Its ActiveSync table
// stops before code page 25 (Find, 16.1) and lacks the 16.1 additions
// MeetingResponse ProposedStartTime/ProposedEndTime and Provision
// AccountOnlyRemoteWipe. (It does know the 16.0 AirSyncBase, Calendar,
// ComposeMail and Email2 additions.)
func libwbxmlMissing(t Tag) bool {
	switch t {
	case MeetingResponseProposedStartTime, MeetingResponseProposedEndTime, ProvisionAccountOnlyRemoteWipe:
		return true
	}
	return t.Page() == PageFind
}

// libwbxmlOpaque lists the tags whose text libwbxml's XML form holds as
// base64 of opaque data: xml2wbxml decodes their text into OPAQUE and
// wbxml2xml prints their OPAQUE as base64. Every other tag's opaque data
// has no libwbxml XML spelling. Checked by TestLibwbxmlTagTable.
var libwbxmlOpaque = map[Tag]bool{
	ResolveRecipientsData:        true,
	SearchConversationId:         true,
	GALData:                      true,
	AirSyncBaseContent:           true,
	ItemOperationsConversationId: true,
	ComposeMailMime:              true,
	Email2ConversationId:         true,
	Email2ConversationIndex:      true,
}

// libwbxmlName is the spelling of t in libwbxml's ActiveSync table.
func libwbxmlName(t Tag) string {
	if n, ok := libwbxmlNames[t]; ok {
		return n
	}
	return t.Name()
}

// libwbxmlLookup resolves libwbxml's spelling of a tag name on page p.
func libwbxmlLookup(p uint8, name string) (Tag, bool) {
	for t, n := range libwbxmlNames {
		if t.Page() == p && n == name {
			return t, true
		}
	}
	t, ok := LookupInPage(p, name)
	if ok {
		if _, renamed := libwbxmlNames[t]; renamed {
			return 0, false
		}
	}
	return t, ok
}
