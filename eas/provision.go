package eas

import "github.com/easgate/easgate/eas/wbxml"

// Policy types of the Provision command (MS-ASPROV 2.2.2.43).
const (
	PolicyTypeWBXML = "MS-EAS-Provisioning-WBXML" // 12.0 and later
	PolicyTypeXML   = "MS-WAP-Provisioning-XML"   // 2.5
)

// Provision is the body of a Provision request or response (MS-ASPROV 2.2.2, MS-ASCMD
// 2.2.1.14). Requests carry DeviceInformation (14.1 and later), Policies with a PolicyType
// (initial request) or PolicyKey and Status (acknowledgement), and the RemoteWipe or
// AccountOnlyRemoteWipe acknowledgement Status. Responses carry Status, Policies with
// PolicyKey, Status and the policy document, and a RemoteWipe or AccountOnlyRemoteWipe
// directive.
type Provision struct {
	DeviceInformation *DeviceInformation // settings:DeviceInformation
	Status            Status             // response: Provision status (ProvisionSuccess, ...)
	// Policies is nil when the body has no Policies element.
	Policies []*Policy
	// RemoteWipe and AccountOnlyRemoteWipe (16.1): in a response their presence is the
	// wipe directive; in a request their Status acknowledges it.
	RemoteWipe            *RemoteWipe
	AccountOnlyRemoteWipe *RemoteWipe

	src  source
	elem *wbxml.Element
}

// Policy is one Policies/Policy element (MS-ASPROV 2.2.2.41).
type Policy struct {
	PolicyType string
	PolicyKey  string // a decimal uint32 in practice; up to 64 characters by the spec
	// Status is PolicySuccess... in a response and PolicyAckSuccess... in a request.
	Status Status
	// Data is the policy document of a 12.0+ response (Data/EASProvisionDoc).
	Data *PolicyDocument
	// XMLData is the Data of a 2.5 response (MS-WAP-Provisioning-XML), kept as text.
	XMLData string

	elem *wbxml.Element
}

// RemoteWipe is a RemoteWipe or AccountOnlyRemoteWipe element (MS-ASPROV 2.2.2.45,
// 2.2.2.1): empty in a response, with the client's Status (RemoteWipeAckSuccess or
// RemoteWipeAckFailure) in a request.
type RemoteWipe struct {
	Status Status
	elem   *wbxml.Element
}

// PolicyDocument is the EASProvisionDoc element (MS-ASPROV 2.2.2.27): every policy setting
// of MS-ASPROV 2.2.2. A nil field is an absent element. Integer settings sent as an empty
// element (meaning "no limit") read as NoLimit.
type PolicyDocument struct {
	DevicePasswordEnabled              *bool
	AlphanumericDevicePasswordRequired *bool
	// RequireStorageCardEncryption is token 0x10, which MS-ASWBXML named
	// DeviceEncryptionEnabled in 12.0. Token 0x12 (the deprecated DocumentBrowseEnabled)
	// is not modelled and passes through untouched.
	RequireStorageCardEncryption             *bool
	PasswordRecoveryEnabled                  *bool
	AttachmentsEnabled                       *bool
	MinDevicePasswordLength                  *int64
	MaxInactivityTimeDeviceLock              *int64 // seconds; 9999 means no limit
	MaxDevicePasswordFailedAttempts          *int64
	MaxAttachmentSize                        *int64 // bytes
	AllowSimpleDevicePassword                *bool
	DevicePasswordExpiration                 *int64 // days
	DevicePasswordHistory                    *int64
	AllowStorageCard                         *bool
	AllowCamera                              *bool
	RequireDeviceEncryption                  *bool
	AllowUnsignedApplications                *bool
	AllowUnsignedInstallationPackages        *bool
	MinDevicePasswordComplexCharacters       *int64
	AllowWiFi                                *bool
	AllowTextMessaging                       *bool
	AllowPOPIMAPEmail                        *bool
	AllowBluetooth                           *int64 // 0 disabled, 1 hands-free only, 2 allowed
	AllowIrDA                                *bool
	RequireManualSyncWhenRoaming             *bool
	AllowDesktopSync                         *bool
	MaxCalendarAgeFilter                     *int64 // 0 all, 4 two weeks, 5 one month, 6 three, 7 six months
	AllowHTMLEmail                           *bool
	MaxEmailAgeFilter                        *int64 // 0 all, 1 one day ... 5 one month
	MaxEmailBodyTruncationSize               *int64 // KB; -1 no truncation
	MaxEmailHTMLBodyTruncationSize           *int64 // KB; -1 no truncation
	RequireSignedSMIMEMessages               *bool
	RequireEncryptedSMIMEMessages            *bool
	RequireSignedSMIMEAlgorithm              *int64 // 0 SHA1, 1 MD5
	RequireEncryptionSMIMEAlgorithm          *int64 // 0 TripleDES, 1 DES, 2 RC2-128, 3 RC2-64, 4 RC2-40
	AllowSMIMEEncryptionAlgorithmNegotiation *int64 // 0 no, 1 strongest only, 2 any
	AllowSMIMESoftCerts                      *bool
	AllowBrowser                             *bool
	AllowConsumerEmail                       *bool
	AllowRemoteDesktop                       *bool
	AllowInternetSharing                     *bool
	// UnapprovedInROMApplicationList holds ApplicationName values and
	// ApprovedApplicationList holds Hash values; nil is an absent list, an empty
	// non-nil slice an empty list element.
	UnapprovedInROMApplicationList []string
	ApprovedApplicationList        []string

	elem *wbxml.Element
}

type policyField struct {
	tag wbxml.Tag
	b   **bool
	n   **int64
}

// fields lists the scalar settings in code page order (the order servers send them).
func (d *PolicyDocument) fields() []policyField {
	P := func(t wbxml.Tag, b **bool) policyField { return policyField{tag: t, b: b} }
	N := func(t wbxml.Tag, n **int64) policyField { return policyField{tag: t, n: n} }
	return []policyField{
		P(wbxml.ProvisionDevicePasswordEnabled, &d.DevicePasswordEnabled),
		P(wbxml.ProvisionAlphanumericDevicePasswordRequired, &d.AlphanumericDevicePasswordRequired),
		P(wbxml.ProvisionRequireStorageCardEncryption, &d.RequireStorageCardEncryption),
		P(wbxml.ProvisionPasswordRecoveryEnabled, &d.PasswordRecoveryEnabled),
		P(wbxml.ProvisionAttachmentsEnabled, &d.AttachmentsEnabled),
		N(wbxml.ProvisionMinDevicePasswordLength, &d.MinDevicePasswordLength),
		N(wbxml.ProvisionMaxInactivityTimeDeviceLock, &d.MaxInactivityTimeDeviceLock),
		N(wbxml.ProvisionMaxDevicePasswordFailedAttempts, &d.MaxDevicePasswordFailedAttempts),
		N(wbxml.ProvisionMaxAttachmentSize, &d.MaxAttachmentSize),
		P(wbxml.ProvisionAllowSimpleDevicePassword, &d.AllowSimpleDevicePassword),
		N(wbxml.ProvisionDevicePasswordExpiration, &d.DevicePasswordExpiration),
		N(wbxml.ProvisionDevicePasswordHistory, &d.DevicePasswordHistory),
		P(wbxml.ProvisionAllowStorageCard, &d.AllowStorageCard),
		P(wbxml.ProvisionAllowCamera, &d.AllowCamera),
		P(wbxml.ProvisionRequireDeviceEncryption, &d.RequireDeviceEncryption),
		P(wbxml.ProvisionAllowUnsignedApplications, &d.AllowUnsignedApplications),
		P(wbxml.ProvisionAllowUnsignedInstallationPackages, &d.AllowUnsignedInstallationPackages),
		N(wbxml.ProvisionMinDevicePasswordComplexCharacters, &d.MinDevicePasswordComplexCharacters),
		P(wbxml.ProvisionAllowWiFi, &d.AllowWiFi),
		P(wbxml.ProvisionAllowTextMessaging, &d.AllowTextMessaging),
		P(wbxml.ProvisionAllowPOPIMAPEmail, &d.AllowPOPIMAPEmail),
		N(wbxml.ProvisionAllowBluetooth, &d.AllowBluetooth),
		P(wbxml.ProvisionAllowIrDA, &d.AllowIrDA),
		P(wbxml.ProvisionRequireManualSyncWhenRoaming, &d.RequireManualSyncWhenRoaming),
		P(wbxml.ProvisionAllowDesktopSync, &d.AllowDesktopSync),
		N(wbxml.ProvisionMaxCalendarAgeFilter, &d.MaxCalendarAgeFilter),
		P(wbxml.ProvisionAllowHTMLEmail, &d.AllowHTMLEmail),
		N(wbxml.ProvisionMaxEmailAgeFilter, &d.MaxEmailAgeFilter),
		N(wbxml.ProvisionMaxEmailBodyTruncationSize, &d.MaxEmailBodyTruncationSize),
		N(wbxml.ProvisionMaxEmailHTMLBodyTruncationSize, &d.MaxEmailHTMLBodyTruncationSize),
		P(wbxml.ProvisionRequireSignedSMIMEMessages, &d.RequireSignedSMIMEMessages),
		P(wbxml.ProvisionRequireEncryptedSMIMEMessages, &d.RequireEncryptedSMIMEMessages),
		N(wbxml.ProvisionRequireSignedSMIMEAlgorithm, &d.RequireSignedSMIMEAlgorithm),
		N(wbxml.ProvisionRequireEncryptionSMIMEAlgorithm, &d.RequireEncryptionSMIMEAlgorithm),
		N(wbxml.ProvisionAllowSMIMEEncryptionAlgorithmNegotiation, &d.AllowSMIMEEncryptionAlgorithmNegotiation),
		P(wbxml.ProvisionAllowSMIMESoftCerts, &d.AllowSMIMESoftCerts),
		P(wbxml.ProvisionAllowBrowser, &d.AllowBrowser),
		P(wbxml.ProvisionAllowConsumerEmail, &d.AllowConsumerEmail),
		P(wbxml.ProvisionAllowRemoteDesktop, &d.AllowRemoteDesktop),
		P(wbxml.ProvisionAllowInternetSharing, &d.AllowInternetSharing),
	}
}

func parsePolicyDocument(e *wbxml.Element) (*PolicyDocument, error) {
	d := &PolicyDocument{elem: e}
	var fe firstErr
	for _, f := range d.fields() {
		if f.b != nil {
			*f.b = fe.bool(e, f.tag)
		} else {
			*f.n = fe.int(e, f.tag)
		}
	}
	d.UnapprovedInROMApplicationList = textList(e.Find(wbxml.ProvisionUnapprovedInROMApplicationList), wbxml.ProvisionApplicationName)
	d.ApprovedApplicationList = textList(e.Find(wbxml.ProvisionApprovedApplicationList), wbxml.ProvisionHash)
	return d, fe.err
}

// textList returns the values of list's children with tag t; nil when list is nil.
func textList(list *wbxml.Element, t wbxml.Tag) []string {
	if list == nil {
		return nil
	}
	out := []string{}
	for _, c := range list.FindAll(t) {
		out = append(out, c.Text())
	}
	return out
}

func setTextList(e *wbxml.Element, listTag, t wbxml.Tag, vals []string) {
	if vals == nil {
		remove(e, listTag)
		return
	}
	list := e.Find(listTag)
	if list != nil && equalStrings(textList(list, t), vals) {
		return
	}
	if list == nil {
		list = wbxml.NewElement(listTag)
		e.Append(list)
	}
	items := make([]*wbxml.Element, len(vals))
	for i, v := range vals {
		items[i] = wbxml.NewText(t, v)
	}
	setList(list, t, items)
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (d *PolicyDocument) element() *wbxml.Element {
	e := elemOr(d.elem, wbxml.ProvisionEASProvisionDoc)
	d.elem = e
	for _, f := range d.fields() {
		if f.b != nil {
			setOptBool(e, f.tag, *f.b)
		} else {
			setOptInt(e, f.tag, *f.n)
		}
	}
	setTextList(e, wbxml.ProvisionUnapprovedInROMApplicationList, wbxml.ProvisionApplicationName, d.UnapprovedInROMApplicationList)
	setTextList(e, wbxml.ProvisionApprovedApplicationList, wbxml.ProvisionHash, d.ApprovedApplicationList)
	return e
}

// ParseProvision reads a Provision request or response body.
func ParseProvision(doc *wbxml.Document) (*Provision, error) {
	root, err := rootOf(doc, wbxml.ProvisionProvision)
	if err != nil {
		return nil, err
	}
	p := &Provision{elem: root}
	p.src.set(doc)
	var fe firstErr
	if di := root.Find(wbxml.SettingsDeviceInformation); di != nil {
		p.DeviceInformation = parseDeviceInformation(di, &fe)
	}
	p.Status = fe.status(root, wbxml.ProvisionStatus)
	if pols := root.Find(wbxml.ProvisionPolicies); pols != nil {
		p.Policies = []*Policy{}
		for _, pe := range pols.FindAll(wbxml.ProvisionPolicy) {
			pol := &Policy{elem: pe, PolicyType: text(pe, wbxml.ProvisionPolicyType),
				PolicyKey: text(pe, wbxml.ProvisionPolicyKey)}
			pol.Status = fe.status(pe, wbxml.ProvisionStatus)
			if data := pe.Find(wbxml.ProvisionData); data != nil {
				if doc := data.Find(wbxml.ProvisionEASProvisionDoc); doc != nil {
					pol.Data, err = parsePolicyDocument(doc)
					fe.keep(err)
				} else {
					pol.XMLData = data.Text()
				}
			}
			p.Policies = append(p.Policies, pol)
		}
	}
	p.RemoteWipe = parseRemoteWipe(root.Find(wbxml.ProvisionRemoteWipe), &fe)
	p.AccountOnlyRemoteWipe = parseRemoteWipe(root.Find(wbxml.ProvisionAccountOnlyRemoteWipe), &fe)
	if fe.err != nil {
		return nil, fe.err
	}
	return p, nil
}

func parseRemoteWipe(e *wbxml.Element, fe *firstErr) *RemoteWipe {
	if e == nil {
		return nil
	}
	return &RemoteWipe{elem: e, Status: fe.status(e, wbxml.ProvisionStatus)}
}

func (w *RemoteWipe) element(t wbxml.Tag) *wbxml.Element {
	if w == nil {
		return nil
	}
	e := elemOr(w.elem, t)
	w.elem = e
	setStatus(e, wbxml.ProvisionStatus, w.Status)
	return e
}

func (pol *Policy) element() *wbxml.Element {
	e := elemOr(pol.elem, wbxml.ProvisionPolicy)
	pol.elem = e
	setText(e, wbxml.ProvisionPolicyType, pol.PolicyType)
	// MS-ASPROV 2.2.2.41: in an acknowledgement PolicyKey MUST come before Status; both
	// are written in that order when built from scratch.
	setText(e, wbxml.ProvisionPolicyKey, pol.PolicyKey)
	setStatus(e, wbxml.ProvisionStatus, pol.Status)
	switch {
	case pol.Data != nil:
		data := e.Find(wbxml.ProvisionData)
		if data == nil || data.Kind != wbxml.NoValue {
			data = wbxml.NewElement(wbxml.ProvisionData)
			setChild(e, wbxml.ProvisionData, data)
		}
		setChild(data, wbxml.ProvisionEASProvisionDoc, pol.Data.element())
	default:
		if d := e.Find(wbxml.ProvisionData); d != nil && d.Find(wbxml.ProvisionEASProvisionDoc) != nil {
			remove(e, wbxml.ProvisionData)
		}
		setText(e, wbxml.ProvisionData, pol.XMLData)
	}
	return e
}

// Document builds the Provision body, reusing the parsed tree when there is one.
func (p *Provision) Document() *wbxml.Document {
	e := elemOr(p.elem, wbxml.ProvisionProvision)
	p.elem = e
	if p.DeviceInformation != nil {
		setChild(e, wbxml.SettingsDeviceInformation, p.DeviceInformation.element())
	} else {
		remove(e, wbxml.SettingsDeviceInformation)
	}
	setStatus(e, wbxml.ProvisionStatus, p.Status)
	if p.Policies == nil {
		remove(e, wbxml.ProvisionPolicies)
	} else {
		pols := e.Find(wbxml.ProvisionPolicies)
		if pols == nil {
			pols = wbxml.NewElement(wbxml.ProvisionPolicies)
			e.Append(pols)
		}
		items := make([]*wbxml.Element, len(p.Policies))
		for i, pol := range p.Policies {
			items[i] = pol.element()
		}
		setList(pols, wbxml.ProvisionPolicy, items)
	}
	setChild(e, wbxml.ProvisionRemoteWipe, p.RemoteWipe.element(wbxml.ProvisionRemoteWipe))
	setChild(e, wbxml.ProvisionAccountOnlyRemoteWipe, p.AccountOnlyRemoteWipe.element(wbxml.ProvisionAccountOnlyRemoteWipe))
	return p.src.document(e)
}

// AppendTo encodes the body (see Document) and appends it to dst.
func (p *Provision) AppendTo(dst []byte) ([]byte, error) { return p.Document().Encode(dst) }
