package gateway

import (
	"bytes"
	"encoding/xml"
	"net/mail"
	"strconv"
	"strings"
)

// Autodiscover (MS-ASCMD 2.2.2.1, the mobilesync schema): a device posts its e-mail address and
// the schema it accepts; the gateway answers with its own external URL, so that devices set up
// by address alone land on the gateway and never learn the mail server's address.
const (
	adMobileSyncRequest  = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006"
	adMobileSyncResponse = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
	adResponseSchema     = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
	maxAutodiscoverBody  = 16 << 10
)

type adRequest struct {
	XMLName xml.Name `xml:"Autodiscover"`
	Request struct {
		EMailAddress             string `xml:"EMailAddress"`
		AcceptableResponseSchema string `xml:"AcceptableResponseSchema"`
	} `xml:"Request"`
}

// autodiscover builds the answer to one Autodiscover POST body. The returned status is the HTTP
// status; the body is always an Autodiscover XML document (clients show its error text).
func autodiscover(body []byte, easURL string) (int, []byte) {
	if len(body) > maxAutodiscoverBody {
		return 413, adError(600, "Invalid Request")
	}
	var req adRequest
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.Strict = true
	if err := dec.Decode(&req); err != nil || req.XMLName.Space != adMobileSyncRequest && req.XMLName.Space != "" {
		if err == nil && strings.Contains(req.XMLName.Space, "/outlook/") {
			return 200, adError(601, "Provider is not available for the requested schema; easgate serves the mobilesync schema only")
		}
		return 400, adError(600, "Invalid Request")
	}
	if req.Request.AcceptableResponseSchema != adMobileSyncResponse {
		return 200, adError(601, "Provider is not available for the requested schema; easgate serves the mobilesync schema only")
	}
	addr, err := mail.ParseAddress(req.Request.EMailAddress)
	if err != nil || addr.Name != "" || len(addr.Address) > maxUserLen {
		return 400, adError(600, "Invalid Request")
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<Autodiscover xmlns="` + adResponseSchema + `"><Response xmlns="` + adMobileSyncResponse + `">`)
	b.WriteString(`<Culture>en:us</Culture><User><EMailAddress>`)
	xml.EscapeText(&b, []byte(addr.Address))
	b.WriteString(`</EMailAddress></User><Action><Settings><Server><Type>MobileSync</Type><Url>`)
	xml.EscapeText(&b, []byte(easURL))
	b.WriteString(`</Url><Name>`)
	xml.EscapeText(&b, []byte(easURL))
	b.WriteString(`</Name></Server></Settings></Action></Response></Autodiscover>`)
	return 200, b.Bytes()
}

// adError is an Autodiscover error response (ErrorCode 600: invalid request; 601: the requested
// schema is not available).
func adError(code int, msg string) []byte {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<Autodiscover xmlns="` + adResponseSchema + `"><Response><Error><ErrorCode>`)
	b.WriteString(strconv.Itoa(code))
	b.WriteString(`</ErrorCode><Message>`)
	xml.EscapeText(&b, []byte(msg))
	b.WriteString(`</Message></Error></Response></Autodiscover>`)
	return b.Bytes()
}
