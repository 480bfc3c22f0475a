package quarantine

import (
	"strconv"
	"strings"
)

// lcidLanguages maps the primary language identifier of an MS-LCID (the low 10 bits,
// [MS-LCID] section 2.1) to its ISO 639-1 code. Only the primary language matters: the
// message templates are per language, not per region.
var lcidLanguages = map[uint16]string{
	0x01: "ar", 0x02: "bg", 0x03: "ca", 0x04: "zh", 0x05: "cs", 0x06: "da", 0x07: "de",
	0x08: "el", 0x09: "en", 0x0a: "es", 0x0b: "fi", 0x0c: "fr", 0x0d: "he", 0x0e: "hu",
	0x0f: "is", 0x10: "it", 0x11: "ja", 0x12: "ko", 0x13: "nl", 0x14: "nb", 0x15: "pl",
	0x16: "pt", 0x18: "ro", 0x19: "ru", 0x1a: "hr", 0x1b: "sk", 0x1d: "sv", 0x1e: "th",
	0x1f: "tr", 0x22: "uk", 0x24: "sl", 0x25: "et", 0x26: "lv", 0x27: "lt", 0x2a: "vi",
}

// LCIDLanguage returns the ISO 639-1 language of an MS-LCID value as the base64 query
// carries it (MS-ASHTTP 2.2.1.1.1.1, "Locale"), e.g. 0x0407 → "de". ok is false for 0 and
// for languages the table does not know.
func LCIDLanguage(lcid uint16) (lang string, ok bool) {
	if lcid == 0 {
		return "", false
	}
	lang, ok = lcidLanguages[lcid&0x3ff]
	return lang, ok
}

// NegotiateLanguage picks the language for a reader: the first of the request's MS-LCID
// (lcid, 0 when absent) and its Accept-Language header (RFC 9110 section 12.5.4, q-values
// honoured) that is in supported, else def. supported holds lower-case primary language
// subtags ("en", "de"). It never fails: a malformed header is ignored.
func NegotiateLanguage(lcid uint16, acceptLanguage string, supported []string, def string) string {
	if l, ok := LCIDLanguage(lcid); ok && contains(supported, l) {
		return l
	}
	best, bestQ := "", 0.0
	for part := range strings.SplitSeq(acceptLanguage, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		tag = strings.ToLower(strings.TrimSpace(tag))
		if tag == "" || tag == "*" {
			continue
		}
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.TrimSpace(k) == "q" {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil || f < 0 || f > 1 {
					f = 0
				}
				q = f
			}
		}
		primary, _, _ := strings.Cut(tag, "-")
		if q > bestQ && contains(supported, primary) {
			best, bestQ = primary, q
		}
	}
	if best != "" {
		return best
	}
	return def
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
