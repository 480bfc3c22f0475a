package portal

// text is the portal's wording in one language. Failing rules are worded by the quarantine
// templates (Renderer.Fix), so that page and message say the same.
type text struct {
	Title         string
	Device        string
	Name          string
	Model         string
	OS            string
	Type          string
	State         string
	Unknown       string
	NotCompliantH string
	NotCompliantP string
	FixH          string
	NotEnrolledH  string
	NotEnrolledP  string
	EnrollLink    string
	EnrollAsk     string
	PendingH      string
	PendingP      string
	BlockedH      string
	BlockedP      string
	ReleasedH     string
	ReleasedP     string
	UnavailableH  string
	UnavailableP  string
	AutoUpdate    string
	InvalidTitle  string
	InvalidP      string
	ExpiredTitle  string
	ExpiredP      string
	NotFoundTitle string
	NotFoundP     string
	StateNames    map[string]string
	// The user's own wipe of a lost device.
	LostH          string
	LostP          string
	WipeButton     string
	ConfirmTitle   string
	ConfirmP       string
	ConfirmKeeps   string
	ConfirmFinal   string
	ConfirmButton  string
	Cancel         string
	DoneTitle      string
	DoneP          string
	DoneKeeps      string
	DoneNext       string
	RefusedTitle   string
	RefusedP       string
	FailedTitle    string
	FailedP        string
	ForbiddenTitle string
	ForbiddenP     string
	ContactPrefix  string
	CheckedAtLabel string
}

var texts = map[string]*text{
	"en": {
		Title:         "Your device and company email",
		Device:        "Device",
		Name:          "Name",
		Model:         "Model",
		OS:            "Operating system",
		Type:          "Type",
		State:         "State",
		Unknown:       "not reported",
		NotCompliantH: "Your device does not meet the security requirements",
		NotCompliantP: "Company email stays on hold until the device meets these requirements:",
		FixH:          "What to do",
		NotEnrolledH:  "Your device is not enrolled",
		NotEnrolledP:  "Company email is only available on devices enrolled in device management.",
		EnrollLink:    "Enrol this device",
		EnrollAsk:     "Ask your IT department how to enrol this device.",
		PendingH:      "Your device is waiting for approval",
		PendingP:      "Your IT department has to approve this device before it receives company email.",
		BlockedH:      "This device cannot receive company email",
		BlockedP:      "Access from this device is blocked. Contact your IT department if you think this is a mistake.",
		ReleasedH:     "Your device is compliant — mail will arrive in a moment",
		ReleasedP:     "Nothing else to do. Keep your mail app open; your email is on its way.",
		UnavailableH:  "The status cannot be checked right now",
		UnavailableP:  "Please try again in a minute.",
		AutoUpdate:    "This page updates by itself.",
		InvalidTitle:  "This link is not valid",
		InvalidP:      "The link may have been cut off or changed. Open the latest message about your device in your mail app and use the link there.",
		ExpiredTitle:  "This link has expired",
		ExpiredP:      "For your security, links are valid for a limited time. Your mail app shows a newer message about your device with a fresh link.",
		NotFoundTitle: "Page not found",
		NotFoundP:     "Open the latest message about your device in your mail app and use the link there.",
		StateNames: map[string]string{
			"not_compliant": "not compliant", "not_enrolled": "not enrolled",
			"pending_approval": "waiting for approval", "blocked": "blocked",
			"released": "compliant", "unavailable": "unknown",
		},
		LostH:          "Lost this device?",
		LostP:          "If this device was lost or stolen, you can have your company email erased from it. Your personal apps and data on it are not touched.",
		WipeButton:     "Erase company email from this device",
		ConfirmTitle:   "Are you sure you want to erase company email from this device?",
		ConfirmP:       "The next time the device connects, the company account — with its email, calendar and contacts — is removed from it, and the device receives no company email until then.",
		ConfirmKeeps:   "Personal apps, photos and other data on the device stay as they are.",
		ConfirmFinal:   "This cannot be undone. To use company email on this device again, you would have to set up the account again.",
		ConfirmButton:  "Yes, erase company email",
		Cancel:         "Cancel",
		DoneTitle:      "Company email will be erased from this device",
		DoneP:          "The company account is removed from the device the next time it connects. Until then the device receives no company email. If it is switched off or offline, this happens as soon as it is back online.",
		DoneKeeps:      "Your personal apps, photos and other data on the device are not touched.",
		DoneNext:       "Please also change your password and tell your IT department that the device is lost.",
		RefusedTitle:   "Please contact your IT department",
		RefusedP:       "Company email cannot be erased from this device on this page, so nothing was changed. Your IT department can block the device or erase it for you.",
		FailedTitle:    "Your request could not be completed",
		FailedP:        "Please try again in a minute. If this keeps happening, contact your IT department.",
		ForbiddenTitle: "This request could not be verified",
		ForbiddenP:     "Nothing was changed. Open the page again from the link in your message and try again.",
	},
	"de": {
		Title:         "Ihr Gerät und die Firmen-E-Mail",
		Device:        "Gerät",
		Name:          "Name",
		Model:         "Modell",
		OS:            "Betriebssystem",
		Type:          "Typ",
		State:         "Status",
		Unknown:       "nicht gemeldet",
		NotCompliantH: "Ihr Gerät erfüllt die Sicherheitsanforderungen nicht",
		NotCompliantP: "Die Firmen-E-Mail wird zurückgehalten, bis das Gerät diese Anforderungen erfüllt:",
		FixH:          "Was zu tun ist",
		NotEnrolledH:  "Ihr Gerät ist nicht registriert",
		NotEnrolledP:  "Firmen-E-Mail gibt es nur auf Geräten, die in der Geräteverwaltung registriert sind.",
		EnrollLink:    "Dieses Gerät registrieren",
		EnrollAsk:     "Fragen Sie Ihre IT-Abteilung, wie Sie dieses Gerät registrieren.",
		PendingH:      "Ihr Gerät wartet auf Freigabe",
		PendingP:      "Ihre IT-Abteilung muss dieses Gerät freigeben, bevor es Firmen-E-Mail erhält.",
		BlockedH:      "Dieses Gerät kann keine Firmen-E-Mail empfangen",
		BlockedP:      "Der Zugriff von diesem Gerät ist gesperrt. Wenden Sie sich an Ihre IT-Abteilung, wenn Sie das für einen Fehler halten.",
		ReleasedH:     "Ihr Gerät erfüllt die Anforderungen — Ihre E-Mail kommt gleich",
		ReleasedP:     "Sie müssen nichts weiter tun. Lassen Sie Ihre Mail-App geöffnet; Ihre E-Mail ist unterwegs.",
		UnavailableH:  "Der Status kann gerade nicht geprüft werden",
		UnavailableP:  "Bitte versuchen Sie es in einer Minute erneut.",
		AutoUpdate:    "Diese Seite aktualisiert sich selbst.",
		InvalidTitle:  "Dieser Link ist ungültig",
		InvalidP:      "Der Link wurde möglicherweise abgeschnitten oder verändert. Öffnen Sie die neueste Nachricht zu Ihrem Gerät in Ihrer Mail-App und verwenden Sie den Link dort.",
		ExpiredTitle:  "Dieser Link ist abgelaufen",
		ExpiredP:      "Zu Ihrer Sicherheit gelten Links nur begrenzte Zeit. Ihre Mail-App zeigt eine neuere Nachricht zu Ihrem Gerät mit einem neuen Link.",
		NotFoundTitle: "Seite nicht gefunden",
		NotFoundP:     "Öffnen Sie die neueste Nachricht zu Ihrem Gerät in Ihrer Mail-App und verwenden Sie den Link dort.",
		StateNames: map[string]string{
			"not_compliant": "nicht konform", "not_enrolled": "nicht registriert",
			"pending_approval": "wartet auf Freigabe", "blocked": "gesperrt",
			"released": "freigegeben", "unavailable": "unbekannt",
		},
		LostH:          "Gerät verloren?",
		LostP:          "Wenn dieses Gerät verloren gegangen ist oder gestohlen wurde, können Sie Ihre Firmen-E-Mail darauf löschen lassen. Ihre persönlichen Apps und Daten auf dem Gerät bleiben unberührt.",
		WipeButton:     "Firmen-E-Mail von diesem Gerät löschen",
		ConfirmTitle:   "Möchten Sie die Firmen-E-Mail wirklich von diesem Gerät löschen?",
		ConfirmP:       "Sobald sich das Gerät das nächste Mal verbindet, wird das Firmenkonto – mit E-Mails, Kalender und Kontakten – davon entfernt. Bis dahin erhält das Gerät keine Firmen-E-Mail.",
		ConfirmKeeps:   "Persönliche Apps, Fotos und andere Daten auf dem Gerät bleiben erhalten.",
		ConfirmFinal:   "Das lässt sich nicht rückgängig machen. Um die Firmen-E-Mail auf diesem Gerät wieder zu nutzen, müssten Sie das Konto neu einrichten.",
		ConfirmButton:  "Ja, Firmen-E-Mail löschen",
		Cancel:         "Abbrechen",
		DoneTitle:      "Die Firmen-E-Mail wird von diesem Gerät gelöscht",
		DoneP:          "Das Firmenkonto wird vom Gerät entfernt, sobald es sich das nächste Mal verbindet. Bis dahin erhält das Gerät keine Firmen-E-Mail. Ist es ausgeschaltet oder offline, geschieht das, sobald es wieder online ist.",
		DoneKeeps:      "Ihre persönlichen Apps, Fotos und anderen Daten auf dem Gerät bleiben unberührt.",
		DoneNext:       "Bitte ändern Sie außerdem Ihr Passwort und melden Sie den Verlust Ihrer IT-Abteilung.",
		RefusedTitle:   "Bitte wenden Sie sich an Ihre IT-Abteilung",
		RefusedP:       "Die Firmen-E-Mail kann auf dieser Seite nicht von diesem Gerät gelöscht werden; es wurde nichts geändert. Ihre IT-Abteilung kann das Gerät sperren oder für Sie löschen.",
		FailedTitle:    "Ihre Anfrage konnte nicht ausgeführt werden",
		FailedP:        "Bitte versuchen Sie es in einer Minute erneut. Wenn das wiederholt passiert, wenden Sie sich an Ihre IT-Abteilung.",
		ForbiddenTitle: "Diese Anfrage konnte nicht bestätigt werden",
		ForbiddenP:     "Es wurde nichts geändert. Öffnen Sie die Seite erneut über den Link in Ihrer Nachricht und versuchen Sie es noch einmal.",
	},
}
