// Package eas is the Exchange ActiveSync request model of easgate: commands and their
// MS-ASHTTP command codes, protocol versions, the request query in both its plain text
// (MS-ASHTTP 2.2.1.1.1.2) and base64-encoded (MS-ASHTTP 2.2.1.1.1.1) forms, the request
// headers that carry protocol state (MS-ASHTTP 2.2.1.1.2), the common and per-command status
// codes (MS-ASCMD 2.2.2 and 2.2.3.177, MS-ASPROV 2.2.2.54), and typed command bodies built
// on the WBXML tree of package eas/wbxml.
//
// The package does no network I/O and imports no HTTP stack: the gateway hands it raw query
// bytes and a header lookup callback. Parsing never panics on any input; every rejection is
// an *Error carrying the HTTP status and, where one applies, the EAS status to answer with.
//
// # Request model
//
// ParseQuery, ParseHeaders and Validate (or Parse, all three) fill one pooled *Request per
// HTTP request without allocating; AppendQuery and VisitHeaders are their inverse, for
// clients such as the bench harness. See Request for the ownership of its strings.
//
// # Typed bodies
//
// Provision, FolderSync, Sync, Ping, Settings, ComposeMail (SendMail, SmartReply,
// SmartForward) and ItemOperations are views over a wbxml element tree. Parsing a body
// reads the elements the gateway understands into struct fields and keeps the tree;
// Document (and AppendTo) writes the fields back into that same tree, touching only
// elements whose value changed, so children the package does not model (newer protocol
// versions, vendor extensions, AirSync ApplicationData) and everything the gateway leaves
// alone re-encode byte for byte: for any body a typed parser accepts, building it back
// unchanged gives the input bytes (FuzzBodyRoundTrip). A body built from scratch (a
// struct literal, no source tree) gets its elements in the order of the specification.
//
// Typed bodies are not safe for concurrent use. Their strings are copies; element subtrees
// they expose (ApplicationData, Options, Properties, Mime) alias the parsed Document, and
// building modifies that Document's tree in place.
package eas
