package eas

import "github.com/easgate/easgate/eas/wbxml"

// Settings is the body of a Settings request or response (MS-ASCMD 2.2.1.18). Each
// section is nil when absent.
type Settings struct {
	Status                      Status // response
	Oof                         *Oof
	DeviceInformation           *DeviceInformation
	DevicePassword              *DevicePassword
	UserInformation             *SettingsSection
	RightsManagementInformation *SettingsSection

	src  source
	elem *wbxml.Element
}

// DeviceInformation is settings:DeviceInformation (MS-ASCMD 2.2.3.50), sent by the client
// in Settings and in 14.1+ Provision requests inside Set, and answered with Status.
// EnableOutboundSMS and MobileOperator are 14.0+; UserAgent 12.1+.
type DeviceInformation struct {
	Status            Status // response
	Model             string
	IMEI              string
	FriendlyName      string
	OS                string
	OSLanguage        string
	PhoneNumber       string
	UserAgent         string
	EnableOutboundSMS *bool
	MobileOperator    string

	elem *wbxml.Element
}

func parseDeviceInformation(e *wbxml.Element, fe *firstErr) *DeviceInformation {
	d := &DeviceInformation{elem: e}
	d.Status = fe.status(e, wbxml.SettingsStatus)
	if set := e.Find(wbxml.SettingsSet); set != nil {
		d.Model = text(set, wbxml.SettingsModel)
		d.IMEI = text(set, wbxml.SettingsIMEI)
		d.FriendlyName = text(set, wbxml.SettingsFriendlyName)
		d.OS = text(set, wbxml.SettingsOS)
		d.OSLanguage = text(set, wbxml.SettingsOSLanguage)
		d.PhoneNumber = text(set, wbxml.SettingsPhoneNumber)
		d.UserAgent = text(set, wbxml.SettingsUserAgent)
		d.EnableOutboundSMS = fe.bool(set, wbxml.SettingsEnableOutboundSMS)
		d.MobileOperator = text(set, wbxml.SettingsMobileOperator)
	}
	return d
}

func (d *DeviceInformation) hasSet() bool {
	return d.Model != "" || d.IMEI != "" || d.FriendlyName != "" || d.OS != "" || d.OSLanguage != "" ||
		d.PhoneNumber != "" || d.UserAgent != "" || d.EnableOutboundSMS != nil || d.MobileOperator != ""
}

func (d *DeviceInformation) element() *wbxml.Element {
	e := elemOr(d.elem, wbxml.SettingsDeviceInformation)
	d.elem = e
	setStatus(e, wbxml.SettingsStatus, d.Status)
	set := e.Find(wbxml.SettingsSet)
	if !d.hasSet() {
		if set != nil && !parseDeviceInformation(e, &firstErr{}).hasSet() {
			return e // a Set that reads as empty, as received
		}
		remove(e, wbxml.SettingsSet)
		return e
	}
	if set == nil {
		set = wbxml.NewElement(wbxml.SettingsSet)
		e.Append(set)
	}
	setText(set, wbxml.SettingsModel, d.Model)
	setText(set, wbxml.SettingsIMEI, d.IMEI)
	setText(set, wbxml.SettingsFriendlyName, d.FriendlyName)
	setText(set, wbxml.SettingsOS, d.OS)
	setText(set, wbxml.SettingsOSLanguage, d.OSLanguage)
	setText(set, wbxml.SettingsPhoneNumber, d.PhoneNumber)
	setText(set, wbxml.SettingsUserAgent, d.UserAgent)
	setOptBool(set, wbxml.SettingsEnableOutboundSMS, d.EnableOutboundSMS)
	setText(set, wbxml.SettingsMobileOperator, d.MobileOperator)
	return e
}

// DevicePassword is settings:DevicePassword (MS-ASCMD 2.2.3.47): Set/Password in a
// request, Status in a response.
type DevicePassword struct {
	Status   Status
	Password string
	elem     *wbxml.Element
}

// SettingsSection is a Settings section the gateway only routes: UserInformation and
// RightsManagementInformation. Get is the request's empty Get; Status the response's;
// Elem is the section element itself, whose content (Accounts, RightsManagementTemplates)
// callers read or rewrite as a tree.
type SettingsSection struct {
	Get    bool
	Status Status
	Elem   *wbxml.Element
}

// Oof is settings:Oof (MS-ASCMD 2.2.3.119): Get (request: the BodyType wanted; response:
// the current settings) or Set (request), and the response Status.
type Oof struct {
	Status Status
	Get    *OofSettings
	Set    *OofSettings
	elem   *wbxml.Element
}

// OofSettings is the content of Oof's Get or Set. Messages are the OofMessage elements,
// kept as trees.
type OofSettings struct {
	BodyType  string
	OofState  *int64 // 0 disabled, 1 global, 2 time-based
	StartTime string
	EndTime   string
	Messages  []*wbxml.Element
	elem      *wbxml.Element
}

// ParseSettings reads a Settings request or response body.
func ParseSettings(doc *wbxml.Document) (*Settings, error) {
	root, err := rootOf(doc, wbxml.SettingsSettings)
	if err != nil {
		return nil, err
	}
	s := &Settings{elem: root}
	s.src.set(doc)
	var fe firstErr
	s.Status = fe.status(root, wbxml.SettingsStatus)
	if e := root.Find(wbxml.SettingsDeviceInformation); e != nil {
		s.DeviceInformation = parseDeviceInformation(e, &fe)
	}
	if e := root.Find(wbxml.SettingsDevicePassword); e != nil {
		s.DevicePassword = &DevicePassword{elem: e, Status: fe.status(e, wbxml.SettingsStatus),
			Password: text(e.Find(wbxml.SettingsSet), wbxml.SettingsPassword)}
	}
	s.UserInformation = parseSection(root.Find(wbxml.SettingsUserInformation), &fe)
	s.RightsManagementInformation = parseSection(root.Find(wbxml.SettingsRightsManagementInformation), &fe)
	if e := root.Find(wbxml.SettingsOof); e != nil {
		s.Oof = &Oof{elem: e, Status: fe.status(e, wbxml.SettingsStatus),
			Get: parseOofSettings(e.Find(wbxml.SettingsGet), &fe),
			Set: parseOofSettings(e.Find(wbxml.SettingsSet), &fe)}
	}
	if fe.err != nil {
		return nil, fe.err
	}
	return s, nil
}

func parseSection(e *wbxml.Element, fe *firstErr) *SettingsSection {
	if e == nil {
		return nil
	}
	return &SettingsSection{Elem: e, Get: has(e, wbxml.SettingsGet), Status: fe.status(e, wbxml.SettingsStatus)}
}

func parseOofSettings(e *wbxml.Element, fe *firstErr) *OofSettings {
	if e == nil {
		return nil
	}
	return &OofSettings{elem: e, BodyType: text(e, wbxml.SettingsBodyType),
		OofState: fe.int(e, wbxml.SettingsOofState), StartTime: text(e, wbxml.SettingsStartTime),
		EndTime: text(e, wbxml.SettingsEndTime), Messages: e.FindAll(wbxml.SettingsOofMessage)}
}

func (o *OofSettings) element(t wbxml.Tag) *wbxml.Element {
	if o == nil {
		return nil
	}
	e := elemOr(o.elem, t)
	o.elem = e
	setText(e, wbxml.SettingsBodyType, o.BodyType)
	setOptInt(e, wbxml.SettingsOofState, o.OofState)
	setText(e, wbxml.SettingsStartTime, o.StartTime)
	setText(e, wbxml.SettingsEndTime, o.EndTime)
	setList(e, wbxml.SettingsOofMessage, o.Messages)
	return e
}

func (s *SettingsSection) element(t wbxml.Tag) *wbxml.Element {
	if s == nil {
		return nil
	}
	e := elemOr(s.Elem, t)
	s.Elem = e
	setFlag(e, wbxml.SettingsGet, s.Get)
	setStatus(e, wbxml.SettingsStatus, s.Status)
	return e
}

// Document builds the Settings body, reusing the parsed tree when there is one.
func (s *Settings) Document() *wbxml.Document {
	e := elemOr(s.elem, wbxml.SettingsSettings)
	s.elem = e
	setStatus(e, wbxml.SettingsStatus, s.Status)
	if s.Oof != nil {
		o := elemOr(s.Oof.elem, wbxml.SettingsOof)
		s.Oof.elem = o
		setStatus(o, wbxml.SettingsStatus, s.Oof.Status)
		setChild(o, wbxml.SettingsGet, s.Oof.Get.element(wbxml.SettingsGet))
		setChild(o, wbxml.SettingsSet, s.Oof.Set.element(wbxml.SettingsSet))
		setChild(e, wbxml.SettingsOof, o)
	} else {
		remove(e, wbxml.SettingsOof)
	}
	if s.DeviceInformation != nil {
		setChild(e, wbxml.SettingsDeviceInformation, s.DeviceInformation.element())
	} else {
		remove(e, wbxml.SettingsDeviceInformation)
	}
	if s.DevicePassword != nil {
		d := elemOr(s.DevicePassword.elem, wbxml.SettingsDevicePassword)
		s.DevicePassword.elem = d
		setStatus(d, wbxml.SettingsStatus, s.DevicePassword.Status)
		if s.DevicePassword.Password != "" {
			set := d.Find(wbxml.SettingsSet)
			if set == nil {
				set = wbxml.NewElement(wbxml.SettingsSet)
				d.Append(set)
			}
			setText(set, wbxml.SettingsPassword, s.DevicePassword.Password)
		}
		setChild(e, wbxml.SettingsDevicePassword, d)
	} else {
		remove(e, wbxml.SettingsDevicePassword)
	}
	setChild(e, wbxml.SettingsUserInformation, s.UserInformation.element(wbxml.SettingsUserInformation))
	setChild(e, wbxml.SettingsRightsManagementInformation, s.RightsManagementInformation.element(wbxml.SettingsRightsManagementInformation))
	return s.src.document(e)
}

// AppendTo encodes the body (see Document) and appends it to dst.
func (s *Settings) AppendTo(dst []byte) ([]byte, error) { return s.Document().Encode(dst) }
