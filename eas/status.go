package eas

import "strconv"

// Status is the value of an ActiveSync Status element. Values 101–177 are the status codes
// common to all commands (MS-ASCMD 2.2.2); values below 100 mean something different for
// each command (MS-ASCMD 2.2.3.177.x, MS-ASPROV 2.2.2.54), so they are looked up together
// with their Command (LookupStatus). The zero value means "no status".
type Status uint16

// StatusInfo describes one status value: its specification name and meaning.
type StatusInfo struct {
	Code    Status
	Name    string
	Meaning string
}

// Common status codes (MS-ASCMD 2.2.2). 157–159 are not assigned.
const (
	StatusInvalidContent                                  Status = 101
	StatusInvalidWBXML                                    Status = 102
	StatusInvalidXML                                      Status = 103
	StatusInvalidDateTime                                 Status = 104
	StatusInvalidCombinationOfIDs                         Status = 105
	StatusInvalidIDs                                      Status = 106
	StatusInvalidMIME                                     Status = 107
	StatusDeviceIDMissingOrInvalid                        Status = 108
	StatusDeviceTypeMissingOrInvalid                      Status = 109
	StatusServerError                                     Status = 110
	StatusServerErrorRetryLater                           Status = 111
	StatusActiveDirectoryAccessDenied                     Status = 112
	StatusMailboxQuotaExceeded                            Status = 113
	StatusMailboxServerOffline                            Status = 114
	StatusSendQuotaExceeded                               Status = 115
	StatusMessageRecipientUnresolved                      Status = 116
	StatusMessageReplyNotAllowed                          Status = 117
	StatusMessagePreviouslySent                           Status = 118
	StatusMessageHasNoRecipient                           Status = 119
	StatusMailSubmissionFailed                            Status = 120
	StatusMessageReplyFailed                              Status = 121
	StatusAttachmentIsTooLarge                            Status = 122
	StatusUserHasNoMailbox                                Status = 123
	StatusUserCannotBeAnonymous                           Status = 124
	StatusUserPrincipalCouldNotBeFound                    Status = 125
	StatusUserDisabledForSync                             Status = 126
	StatusUserOnNewMailboxCannotSync                      Status = 127
	StatusUserOnLegacyMailboxCannotSync                   Status = 128
	StatusDeviceIsBlockedForThisUser                      Status = 129
	StatusAccessDenied                                    Status = 130
	StatusAccountDisabled                                 Status = 131
	StatusSyncStateNotFound                               Status = 132
	StatusSyncStateLocked                                 Status = 133
	StatusSyncStateCorrupt                                Status = 134
	StatusSyncStateAlreadyExists                          Status = 135
	StatusSyncStateVersionInvalid                         Status = 136
	StatusCommandNotSupported                             Status = 137
	StatusVersionNotSupported                             Status = 138
	StatusDeviceNotFullyProvisionable                     Status = 139
	StatusRemoteWipeRequested                             Status = 140
	StatusLegacyDeviceOnStrictPolicy                      Status = 141
	StatusDeviceNotProvisioned                            Status = 142
	StatusPolicyRefresh                                   Status = 143
	StatusInvalidPolicyKey                                Status = 144
	StatusExternallyManagedDevicesNotAllowed              Status = 145
	StatusNoRecurrenceInCalendar                          Status = 146
	StatusUnexpectedItemClass                             Status = 147
	StatusRemoteServerHasNoSSL                            Status = 148
	StatusInvalidStoredRequest                            Status = 149
	StatusItemNotFound                                    Status = 150
	StatusTooManyFolders                                  Status = 151
	StatusNoFoldersFound                                  Status = 152
	StatusItemsLostAfterMove                              Status = 153
	StatusFailureInMoveOperation                          Status = 154
	StatusMoveCommandDisallowedForNonPersistentMoveAction Status = 155
	StatusMoveCommandInvalidDestinationFolder             Status = 156
	StatusAvailabilityTooManyRecipients                   Status = 160
	StatusAvailabilityDLLimitReached                      Status = 161
	StatusAvailabilityTransientFailure                    Status = 162
	StatusAvailabilityFailure                             Status = 163
	StatusBodyPartPreferenceTypeNotSupported              Status = 164
	StatusDeviceInformationRequired                       Status = 165
	StatusInvalidAccountID                                Status = 166
	StatusAccountSendDisabled                             Status = 167
	StatusIRMFeatureDisabled                              Status = 168
	StatusIRMTransientError                               Status = 169
	StatusIRMPermanentError                               Status = 170
	StatusIRMInvalidTemplateID                            Status = 171
	StatusIRMOperationNotPermitted                        Status = 172
	StatusNoPicture                                       Status = 173
	StatusPictureTooLarge                                 Status = 174
	StatusPictureLimitReached                             Status = 175
	StatusBodyPartConversationTooLarge                    Status = 176
	StatusMaximumDevicesReached                           Status = 177
)

var commonStatuses = []StatusInfo{
	{101, "InvalidContent", "The body of the HTTP request sent by the client is invalid."},
	{102, "InvalidWBXML", "The request contains WBXML but it could not be decoded into XML."},
	{103, "InvalidXML", "The XML provided in the request does not follow the protocol requirements."},
	{104, "InvalidDateTime", "The request contains a timestamp that could not be parsed into a valid date and time."},
	{105, "InvalidCombinationOfIDs", "The request contains a combination of parameters that is invalid."},
	{106, "InvalidIDs", "The request contains one or more IDs that could not be parsed into valid values."},
	{107, "InvalidMIME", "The request contains a data string that could not be parsed into a valid MIME message."},
	{108, "DeviceIdMissingOrInvalid", "The device ID is either missing or has an invalid format."},
	{109, "DeviceTypeMissingOrInvalid", "The device type is either missing or has an invalid format."},
	{110, "ServerError", "The server encountered an unknown error; the device should not retry later."},
	{111, "ServerErrorRetryLater", "The server encountered an unknown error; the device should retry later."},
	{112, "ActiveDirectoryAccessDenied", "The server does not have access to read or write to an object in the directory service."},
	{113, "MailboxQuotaExceeded", "The mailbox has reached its size quota."},
	{114, "MailboxServerOffline", "The mailbox server is offline."},
	{115, "SendQuotaExceeded", "The request would exceed the send quota."},
	{116, "MessageRecipientUnresolved", "One of the recipients could not be resolved to an email address."},
	{117, "MessageReplyNotAllowed", "The mailbox server will not allow a reply of this message."},
	{118, "MessagePreviouslySent", "The message was already sent in a previous request or the request contains a duplicate ClientId."},
	{119, "MessageHasNoRecipient", "The message being sent contains no recipient."},
	{120, "MailSubmissionFailed", "The server failed to submit the message for delivery."},
	{121, "MessageReplyFailed", "The server failed to create a reply message."},
	{122, "AttachmentIsTooLarge", "The attachment is too large to be processed by this request."},
	{123, "UserHasNoMailbox", "A mailbox could not be found for the user."},
	{124, "UserCannotBeAnonymous", "The request was sent without credentials; anonymous requests are not allowed."},
	{125, "UserPrincipalCouldNotBeFound", "The user was not found in the directory service."},
	{126, "UserDisabledForSync", "The user object in the directory service indicates that this user is not allowed to use ActiveSync."},
	{127, "UserOnNewMailboxCannotSync", "The server is configured to prevent users from syncing."},
	{128, "UserOnLegacyMailboxCannotSync", "The server is configured to prevent users on legacy servers from syncing."},
	{129, "DeviceIsBlockedForThisUser", "The user is configured to allow only some devices to sync, and this device is not allowed."},
	{130, "AccessDenied", "The user is not allowed to perform that request."},
	{131, "AccountDisabled", "The user's account is disabled."},
	{132, "SyncStateNotFound", "The server's data file that contains the state of the client was unexpectedly missing."},
	{133, "SyncStateLocked", "The server's data file that contains the state of the client is locked."},
	{134, "SyncStateCorrupt", "The server's data file that contains the state of the client appears to be corrupt."},
	{135, "SyncStateAlreadyExists", "The server's data file that contains the state of the client already exists."},
	{136, "SyncStateVersionInvalid", "The version of the server's data file that contains the state of the client is invalid."},
	{137, "CommandNotSupported", "The command is not supported by this server."},
	{138, "VersionNotSupported", "The command is not supported in the protocol version specified."},
	{139, "DeviceNotFullyProvisionable", "The device uses a protocol version that cannot send all the policy settings the admin enabled."},
	{140, "RemoteWipeRequested", "A remote wipe was requested; the device should provision to receive the wipe directive."},
	{141, "LegacyDeviceOnStrictPolicy", "A policy is in place but the device is not provisionable."},
	{142, "DeviceNotProvisioned", "There is a policy in place; the device needs to provision."},
	{143, "PolicyRefresh", "The policy is configured to be refreshed every few hours; the device needs to re-provision."},
	{144, "InvalidPolicyKey", "The device's policy key is invalid; the device needs to re-provision."},
	{145, "ExternallyManagedDevicesNotAllowed", "The device claimed to be externally managed, but the server does not allow externally managed devices."},
	{146, "NoRecurrenceInCalendar", "The request tried to forward an occurrence of a meeting that has no recurrence."},
	{147, "UnexpectedItemClass", "The request tried to operate on a type of items unknown to the server."},
	{148, "RemoteServerHasNoSSL", "The request needs to be proxied to another server but that server does not have Secure Sockets Layer (SSL) enabled."},
	{149, "InvalidStoredRequest", "The server has stored the previous request but the new request was an empty or partial request that cannot be combined with it."},
	{150, "ItemNotFound", "The ItemId value specified in the SmartReply or SmartForward command request could not be found in the mailbox."},
	{151, "TooManyFolders", "The mailbox contains too many folders."},
	{152, "NoFoldersFound", "The mailbox contains no folders."},
	{153, "ItemsLostAfterMove", "After moving items to the destination folder, some of those items could not be found."},
	{154, "FailureInMoveOperation", "The mailbox server returned an unknown error while moving items."},
	{155, "MoveCommandDisallowedForNonPersistentMoveAction", "An ItemOperations command request to move a conversation is missing the MoveAlways element."},
	{156, "MoveCommandInvalidDestinationFolder", "The destination folder for the move is invalid."},
	{160, "AvailabilityTooManyRecipients", "The command has reached the maximum number of recipients that it can request availability for."},
	{161, "AvailabilityDLLimitReached", "The size of the distribution list is larger than the availability service is configured to process."},
	{162, "AvailabilityTransientFailure", "Availability service request failed with a transient error."},
	{163, "AvailabilityFailure", "Availability service request failed with an error."},
	{164, "BodyPartPreferenceTypeNotSupported", "The BodyPartPreference node has an unsupported Type element value."},
	{165, "DeviceInformationRequired", "The required DeviceInformation element is missing in the Provision request."},
	{166, "InvalidAccountId", "The AccountId value is not valid."},
	{167, "AccountSendDisabled", "The AccountId value specified in the request does not support sending email."},
	{168, "IRM_FeatureDisabled", "The Information Rights Management feature is disabled."},
	{169, "IRM_TransientError", "Information Rights Management encountered a transient error."},
	{170, "IRM_PermanentError", "Information Rights Management encountered a permanent error."},
	{171, "IRM_InvalidTemplateID", "The template identifier value is not valid."},
	{172, "IRM_OperationNotPermitted", "Information Rights Management does not support the specified operation."},
	{173, "NoPicture", "The user does not have a contact photo."},
	{174, "PictureTooLarge", "The contact photo exceeds the size limit set by the MaxSize element."},
	{175, "PictureLimitReached", "The number of contact photos returned exceeds the size limit set by the MaxPictures element."},
	{176, "BodyPart_ConversationTooLarge", "The conversation is too large to compute the body parts."},
	{177, "MaximumDevicesReached", "The user's account has too many device partnerships."},
}

var commonByCode = func() (t [78]*StatusInfo) {
	for i := range commonStatuses {
		t[commonStatuses[i].Code-100] = &commonStatuses[i]
	}
	return t
}()

// IsCommon reports whether s is one of the common status codes of MS-ASCMD 2.2.2.
func (s Status) IsCommon() bool {
	return s >= 101 && s <= 177 && commonByCode[s-100] != nil
}

// Common returns the description of a common status code (MS-ASCMD 2.2.2).
func (s Status) Common() (StatusInfo, bool) {
	if !s.IsCommon() {
		return StatusInfo{}, false
	}
	return *commonByCode[s-100], true
}

// String returns the name of a common status code, or the number for other values, whose
// meaning depends on the command (see LookupStatus).
func (s Status) String() string {
	if si, ok := s.Common(); ok {
		return si.Name
	}
	return strconv.Itoa(int(s))
}

// Per-command status values of the Status element of the command's top-level response
// (MS-ASCMD 2.2.3.177.x). They are only meaningful with their command.
const (
	// Sync (MS-ASCMD 2.2.3.177.17).
	SyncSuccess              Status = 1
	SyncInvalidSyncKey       Status = 3
	SyncProtocolError        Status = 4
	SyncServerError          Status = 5
	SyncConversionError      Status = 6
	SyncConflict             Status = 7
	SyncObjectNotFound       Status = 8
	SyncCannotBeCompleted    Status = 9
	SyncHierarchyChanged     Status = 12
	SyncRequestIncomplete    Status = 13
	SyncInvalidWaitOrHB      Status = 14
	SyncInvalidSyncRequest   Status = 15
	SyncRetry                Status = 16
	FolderSyncSuccess        Status = 1
	FolderSyncServerError    Status = 6
	FolderSyncInvalidSyncKey Status = 9
	FolderSyncBadRequest     Status = 10
	FolderSyncUnknownError   Status = 11
	FolderSyncCodeUnknown    Status = 12
	// Ping (MS-ASCMD 2.2.3.177.11).
	PingExpired              Status = 1
	PingChanges              Status = 2
	PingMissingParameters    Status = 3
	PingSyntaxError          Status = 4
	PingHeartbeatOutOfRange  Status = 5
	PingTooManyFolders       Status = 6
	PingFolderSyncRequired   Status = 7
	PingServerError          Status = 8
	ProvisionSuccess         Status = 1
	ProvisionProtocolError   Status = 2
	ProvisionServerError     Status = 3
	SettingsSuccess          Status = 1
	SettingsProtocolError    Status = 2
	SettingsAccessDenied     Status = 3
	SettingsUnavailable      Status = 4
	SettingsInvalidArguments Status = 5
	SettingsConflicting      Status = 6
	SettingsDeniedByPolicy   Status = 7
	// MoveItems is the one command whose success value is not 1 (MS-ASCMD 2.2.3.177.10).
	MoveItemsSuccess Status = 3
)

// Status values of the Provision command's Policy element (MS-ASPROV 2.2.2.54.1): the
// server's answer in a response, and the client's acknowledgement in a request.
const (
	PolicySuccess        Status = 1
	PolicyNoPolicy       Status = 2
	PolicyUnknownType    Status = 3
	PolicyDataCorrupted  Status = 4
	PolicyWrongPolicyKey Status = 5
	PolicyAckSuccess     Status = 1
	PolicyAckPartial     Status = 2
	PolicyAckNotApplied  Status = 3
	PolicyAckExternal    Status = 4
	RemoteWipeAckSuccess Status = 1
	RemoteWipeAckFailure Status = 2
)

var commandStatuses = map[Command][]StatusInfo{
	CmdSync: {
		{1, "Success", "Server successfully completed command."},
		{3, "InvalidSyncKey", "Invalid or mismatched synchronization key; the client returns to synchronization key 0."},
		{4, "ProtocolError", "There was a semantic error in the synchronization request."},
		{5, "ServerError", "Server misconfiguration, temporary system issue, or bad item; frequently transient."},
		{6, "ConversionError", "Error in client/server conversion: a malformed or invalid item was sent."},
		{7, "Conflict", "Conflict matching the client and server object; the client overwrote a server change."},
		{8, "ObjectNotFound", "The object was not found on the server."},
		{9, "CannotBeCompleted", "The Sync command cannot be completed; the user account may be out of disk space."},
		{12, "HierarchyChanged", "The folder hierarchy has changed; a FolderSync is required."},
		{13, "RequestIncomplete", "The Sync command request is not complete: an empty or partial request was sent without a cached one."},
		{14, "InvalidWaitOrHeartbeatInterval", "The Wait or HeartbeatInterval value is outside the permitted range."},
		{15, "InvalidSyncRequest", "Too many collections are included in the Sync request."},
		{16, "Retry", "Something on the server caused a retriable error."},
	},
	CmdFolderSync: {
		{1, "Success", "Server successfully completed command."},
		{6, "ServerError", "An error occurred on the server."},
		{9, "InvalidSyncKey", "Synchronization key mismatch or invalid synchronization key."},
		{10, "BadRequest", "Incorrectly formatted request."},
		{11, "UnknownError", "An unknown error occurred."},
		{12, "CodeUnknown", "Code unknown."},
	},
	CmdFolderCreate: {
		{1, "Success", "Server successfully completed command."},
		{2, "FolderExists", "A folder that has this name already exists."},
		{3, "SystemFolder", "The specified parent folder is a special system folder."},
		{5, "ParentNotFound", "The specified parent folder was not found."},
		{6, "ServerError", "An error occurred on the server."},
		{8, "Timeout", "The request timed out."},
		{9, "InvalidSyncKey", "Synchronization key mismatch or invalid synchronization key."},
		{10, "BadRequest", "Malformed request."},
		{11, "UnknownError", "An unknown error occurred."},
		{12, "CodeUnknown", "Code unknown."},
	},
	CmdFolderDelete: {
		{1, "Success", "Server successfully completed command."},
		{3, "SystemFolder", "The specified folder is a special system folder and cannot be deleted."},
		{4, "FolderNotFound", "The specified folder does not exist."},
		{6, "ServerError", "An error occurred on the server."},
		{8, "Timeout", "The request timed out."},
		{9, "InvalidSyncKey", "Synchronization key mismatch or invalid synchronization key."},
		{10, "BadRequest", "Incorrectly formatted request."},
		{11, "UnknownError", "An unknown error occurred."},
	},
	CmdFolderUpdate: {
		{1, "Success", "Server successfully completed command."},
		{2, "FolderExists", "A folder with that name already exists or the folder is a recipient information cache."},
		{3, "SystemFolder", "The specified folder is a special system folder and cannot be updated."},
		{4, "FolderNotFound", "The specified folder does not exist."},
		{5, "ParentNotFound", "The specified parent folder was not found."},
		{6, "ServerError", "An error occurred on the server."},
		{8, "Timeout", "The request timed out."},
		{9, "InvalidSyncKey", "Synchronization key mismatch or invalid synchronization key."},
		{10, "BadRequest", "Incorrectly formatted request."},
		{11, "UnknownError", "An unknown error occurred."},
	},
	CmdGetItemEstimate: {
		{1, "Success", "Server successfully completed command."},
		{2, "InvalidCollection", "A collection was invalid or one of the specified collection IDs was invalid."},
		{3, "SyncStateNotPrimed", "The synchronization state has not been primed: the client has not issued an initial Sync."},
		{4, "InvalidSyncKey", "The specified synchronization key was invalid."},
	},
	CmdItemOperations: {
		{1, "Success", "Server successfully completed command."},
		{2, "ProtocolError", "Protocol error: the XML validation failed."},
		{3, "ServerError", "Server error."},
		{4, "BadURI", "Document library access: the specified URI is bad."},
		{5, "DocumentLibraryAccessDenied", "Document library: access denied."},
		{6, "DocumentLibraryNotFound", "Document library: the object was not found or access denied."},
		{7, "DocumentLibraryConnectionFailed", "Document library: failed to connect to the server."},
		{8, "ByteRangeInvalid", "The byte-range is invalid or too large."},
		{9, "StoreUnknown", "The store is unknown or unsupported."},
		{10, "FileEmpty", "The file is empty."},
		{11, "DataTooLarge", "The requested data size is too large."},
		{12, "IOFailure", "Failed to download the file because of an input/output failure."},
		{14, "ConversionFailed", "The mailbox fetch provider failed to convert the item."},
		{15, "InvalidAttachment", "The attachment or attachment ID is invalid."},
		{16, "AccessBlocked", "Access to the resource is blocked."},
		{17, "PartialSuccess", "Partial success; the command completed partially."},
		{18, "CredentialsRequired", "Credentials are required to access the resource."},
	},
	CmdMeetingResponse: {
		{1, "Success", "Server successfully completed command."},
		{2, "InvalidMeetingRequest", "Invalid meeting request."},
		{3, "MailboxError", "An error occurred on the server mailbox."},
		{4, "ServerError", "An error occurred on the server."},
	},
	CmdMoveItems: {
		{1, "InvalidSource", "Invalid source collection ID or invalid source item ID."},
		{2, "InvalidDestination", "Invalid destination collection ID."},
		{3, "Success", "Success."},
		{4, "SameSourceAndDestination", "The source and destination collection IDs are the same."},
		{5, "CannotMove", "The item cannot be moved to more than one item at a time, or the source or destination item was locked."},
		{7, "Locked", "The source or destination item was locked."},
	},
	CmdPing: {
		{1, "Expired", "The heartbeat interval expired before any changes occurred in the folders being monitored."},
		{2, "Changes", "Changes occurred in at least one of the monitored folders."},
		{3, "MissingParameters", "The Ping command request omitted required parameters."},
		{4, "SyntaxError", "Syntax error in the Ping command request."},
		{5, "HeartbeatOutOfRange", "The specified heartbeat interval is outside the allowed range."},
		{6, "TooManyFolders", "The Ping command request specified more than the allowed number of folders to monitor."},
		{7, "FolderSyncRequired", "The folder hierarchy is out of date; a folder hierarchy sync is required."},
		{8, "ServerError", "An error occurred on the server."},
	},
	CmdProvision: {
		{1, "Success", "Success."},
		{2, "ProtocolError", "Protocol error: syntax error in the Provision command request."},
		{3, "ServerError", "An error occurred on the server."},
	},
	CmdResolveRecipients: {
		{1, "Success", "Success."},
		{2, "Ambiguous", "The recipient was found to be ambiguous; suggestions are returned."},
		{3, "AmbiguousPartial", "The recipient was found to be ambiguous; a partial list of suggestions is returned."},
		{4, "NotResolved", "The recipient did not resolve to any contact or GAL entry."},
		{5, "ProtocolError", "Protocol error: the request is malformed."},
		{6, "ServerError", "An error occurred on the server."},
		{7, "NoValidCertificate", "The recipient does not have a valid S/MIME certificate."},
		{8, "CertificateLimit", "The global certificate limit was reached."},
	},
	CmdSearch: {
		{1, "Success", "Server successfully completed command."},
		{2, "InvalidRequest", "One or more of the client's search parameters was invalid."},
		{3, "ServerError", "An error occurred on the server."},
		{4, "BadLink", "A bad link was supplied."},
		{5, "AccessDenied", "Access was denied to the resource."},
		{6, "NotFound", "The resource was not found."},
		{7, "ConnectionFailed", "Failed to connect to the resource."},
		{8, "TooComplex", "The query was too complex."},
		{10, "TimedOut", "The search timed out."},
		{11, "FolderSyncRequired", "The folder hierarchy is out of date; a FolderSync is required."},
		{12, "EndOfRange", "The requested range extends past the end of the retrievable results."},
		{13, "AccessBlocked", "Access is blocked to the specified resource."},
		{14, "CredentialsRequired", "Credentials are required to access the resource."},
	},
	CmdSettings: {
		{1, "Success", "Success."},
		{2, "ProtocolError", "Protocol error."},
		{3, "AccessDenied", "Access denied."},
		{4, "ServerUnavailable", "Server unavailable."},
		{5, "InvalidArguments", "Invalid arguments."},
		{6, "ConflictingArguments", "Conflicting arguments."},
		{7, "DeniedByPolicy", "Denied by policy."},
	},
	CmdValidateCert: {
		{1, "Success", "Success."},
		{2, "ProtocolError", "Protocol error."},
		{3, "SignatureNotValidated", "The signature in the digital ID cannot be validated."},
		{4, "UntrustedSource", "The digital ID was issued by an untrusted source."},
		{5, "ChainNotCreatedCorrectly", "The certificate chain that contains the digital ID was not created correctly."},
		{6, "NotValidForSigning", "The digital ID is not valid for signing email messages."},
		{7, "Expired", "The digital ID is not valid yet or it is expired."},
		{8, "ChainTimesInvalid", "The time periods of the certificates in the chain are not properly nested."},
		{9, "UsedIncorrectly", "The digital ID was used for a purpose other than the one it was issued for."},
		{10, "InformationMissing", "Information that is needed to validate the digital ID is missing or incorrect."},
		{11, "IncorrectCAUse", "A certificate in the chain is used as an end entity or a CA incorrectly."},
		{12, "EmailMismatch", "The digital ID does not match the email address of the sender."},
		{13, "Revoked", "The digital ID has been revoked."},
		{14, "RevocationServerUnavailable", "The server that validates the digital ID cannot be contacted."},
		{15, "ChainRevoked", "A certificate in the chain has been revoked."},
		{16, "RevocationStatusUnknown", "The revocation status of the digital ID cannot be validated."},
		{17, "UnknownServerError", "An unknown server error occurred."},
	},
	CmdFind: {
		{1, "Success", "Server successfully completed command."},
		{2, "InvalidRequest", "The request was invalid: the client's search failed to validate."},
		{3, "FolderSyncRequired", "The folder hierarchy is out of date."},
		{4, "StartWithRangeZero", "The requested range does not begin with 0."},
	},
	// SendMail, SmartReply and SmartForward report failures with the common status codes
	// only (MS-ASCMD 2.2.3.177.14, 2.2.3.177.16).
}

// PolicyStatuses lists the values of the Policy element's Status in a Provision response
// (MS-ASPROV 2.2.2.54.1).
var PolicyStatuses = []StatusInfo{
	{1, "Success", "Success."},
	{2, "NoPolicy", "There is no policy for this client."},
	{3, "UnknownPolicyType", "Unknown PolicyType value."},
	{4, "PolicyDataCorrupted", "The policy data on the server is corrupted (possibly tampered with)."},
	{5, "WrongPolicyKey", "The client is acknowledging the wrong policy key."},
}

// PolicyAckStatuses lists the values of the Policy element's Status in a Provision
// acknowledgement request (MS-ASPROV 2.2.2.54.1).
var PolicyAckStatuses = []StatusInfo{
	{1, "Success", "The client applied the policy."},
	{2, "PartialSuccess", "Partial success (at least the PIN was enabled)."},
	{3, "NotApplied", "The client did not apply the policy at all."},
	{4, "ExternallyManaged", "The client claims to have been provisioned by a third party."},
}

// RemoteWipeStatuses lists the values of the RemoteWipe and AccountOnlyRemoteWipe Status
// in a Provision acknowledgement request (MS-ASPROV 2.2.2.54.2, 2.2.2.54.3).
var RemoteWipeStatuses = []StatusInfo{
	{1, "Success", "The client's remote wipe operation was successful."},
	{2, "Failure", "The remote wipe operation failed."},
}

// LookupStatus describes status s as returned in the top-level Status element of cmd's
// response: the command's own table for values below 100, the common table for 101–177.
func LookupStatus(cmd Command, s Status) (StatusInfo, bool) {
	if s > 100 {
		return s.Common()
	}
	for _, si := range commandStatuses[cmd] {
		if si.Code == s {
			return si, true
		}
	}
	return StatusInfo{}, false
}

// CommandStatuses returns the command-specific status table of cmd (without the common
// codes), in the order of the specification.
func CommandStatuses(cmd Command) []StatusInfo {
	return commandStatuses[cmd]
}

// CommonStatuses returns the status codes common to all commands (MS-ASCMD 2.2.2).
func CommonStatuses() []StatusInfo { return commonStatuses }
