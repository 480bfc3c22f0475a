package notifier

import (
	"bytes"
	"html/template"
	"time"
	"unicode/utf8"
)

var adminVerb = map[EventKind]string{
	EventQuarantine: "quarantined",
	EventRelease:    "released",
	EventBlock:      "blocked",
	EventWipe:       "marked for remote wipe",
}

var adminHTML = template.Must(template.New("admin").Parse(`<!DOCTYPE html>
<html><body>
<p>Device <b>{{.DeviceID}}</b> of <b>{{.User}}</b> was {{.Verb}}.</p>
<table>
<tr><td>Event</td><td>{{.Kind}}</td></tr>
<tr><td>User</td><td>{{.User}}</td></tr>
<tr><td>Device</td><td>{{.DeviceID}}</td></tr>
<tr><td>Reason</td><td>{{.Reason}}</td></tr>
<tr><td>Time</td><td>{{.When}}</td></tr>
</table>
</body></html>
`))

// adminContent renders the admin e-mail for ev. Values are HTML-escaped by html/template; the
// subject only carries values checkHeaderValue accepted.
func adminContent(ev Event) Content {
	verb := adminVerb[ev.Kind]
	when := ev.Time.UTC().Format(time.RFC3339)
	data := struct {
		Kind     EventKind
		User     string
		DeviceID string
		Reason   string
		Verb     string
		When     string
	}{ev.Kind, ev.User, ev.DeviceID, ev.Reason, verb, when}
	var h bytes.Buffer
	// The template is fixed and its inputs are strings: Execute cannot fail.
	_ = adminHTML.Execute(&h, data)
	text := "Device " + ev.DeviceID + " of " + ev.User + " was " + verb + ".\r\n\r\n" +
		"Event:  " + string(ev.Kind) + "\r\n" +
		"User:   " + ev.User + "\r\n" +
		"Device: " + ev.DeviceID + "\r\n" +
		"Reason: " + ev.Reason + "\r\n" +
		"Time:   " + when + "\r\n"
	return Content{
		Subject: truncateUTF8("[easgate] Device "+verb+": "+ev.User+" / "+ev.DeviceID, 200),
		Text:    text,
		HTML:    h.String(),
	}
}

// truncateUTF8 cuts s to at most n bytes at a rune boundary.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
