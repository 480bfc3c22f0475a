// Package fuzz holds native Go fuzz targets for every parser that reads network bytes.
package fuzz

import (
	"encoding/base64"
	"testing"

	"github.com/easgate/easgate/eas"
)

// FuzzQueryPlain feeds arbitrary query strings to eas.ParseQuery. It must not panic, and a
// plain query it accepts must re-encode (AppendPlainQuery) and re-parse to an equal Request.
func FuzzQueryPlain(f *testing.F) {
	for _, s := range []string{
		"Cmd=Sync&User=jdoe&DeviceId=ABC123&DeviceType=iPhone",
		"cmd=foldersync&USER=jdoe&deviceid=ABC&devicetype=Android",
		"Cmd=SmartReply&User=CONTOSO%5Cjdoe&DeviceId=ABC&DeviceType=WP&ItemId=5%3A12&CollectionId=5&SaveInSent=T",
		"Cmd=GetAttachment&User=jdoe&DeviceId=ABC&DeviceType=WM&AttachmentName=5%3A3%3A0",
		"Cmd=Sync&User=u&DeviceId=D&DeviceType=T&ItemId=a%0D%0Ab",
		"Cmd=Sync&User=u&DeviceId=D&DeviceType=T&jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, q []byte) {
		var r eas.Request
		if err := eas.ParseQuery(q, &r); err != nil || r.Base64 {
			return
		}
		first := r.Clone()
		enc, err := first.AppendPlainQuery(nil)
		if err != nil {
			t.Fatalf("accepted %q but cannot re-encode: %v", q, err)
		}
		var again eas.Request
		if err := eas.ParseQuery(enc, &again); err != nil {
			t.Fatalf("re-encoded %q of %q does not parse: %v", enc, q, err)
		}
		if !again.Equal(first) {
			t.Fatalf("round trip of %q via %q:\n got %+v\nwant %+v", q, enc, again, *first)
		}
	})
}

// FuzzQueryBase64 feeds arbitrary byte sequences, base64-encoded, to eas.ParseQuery as the
// base64 query form. It must not panic, and a sequence it accepts must re-encode
// (AppendBase64Query) and re-parse to an equal Request.
func FuzzQueryBase64(f *testing.F) {
	for _, s := range []string{
		"jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l",
		"eRQJBBCuTs0Z9ZK6Vldwb/dM8JusBHx8TOgDUFBD",
		"eQIJBBCuTs0Z9ZK6Vldwb/dM8JusBHVeHIQDUFBDBwEBAwYxMTkyODEBBUlOQk9Y",
	} {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, bin []byte) {
		q := base64.StdEncoding.EncodeToString(bin)
		var r eas.Request
		if err := eas.ParseQuery([]byte(q), &r); err != nil {
			return
		}
		if !r.Base64 {
			t.Fatalf("%q parsed as a plain query", q)
		}
		first := r.Clone()
		enc, err := first.AppendBase64Query(nil)
		if err != nil {
			t.Fatalf("accepted %q but cannot re-encode: %v", q, err)
		}
		var again eas.Request
		if err := eas.ParseQuery(enc, &again); err != nil {
			t.Fatalf("re-encoded %q of %q does not parse: %v", enc, q, err)
		}
		if !again.Equal(first) {
			t.Fatalf("round trip of %q via %q:\n got %+v\nwant %+v", q, enc, again, *first)
		}
	})
}
