package eas

// Command is an ActiveSync command (MS-ASCMD 2.2.1) that a client names in the request
// query. The zero value is CmdNone, "no command"; it is not the base64 command code 0 (which
// is Sync): use Code and CommandFromCode to convert to and from the wire code of the
// base64-encoded query (MS-ASHTTP 2.2.1.1.1.1.2).
type Command uint8

// Commands, in MS-ASHTTP command-code order.
const (
	CmdNone Command = iota
	CmdSync
	CmdSendMail
	CmdSmartForward
	CmdSmartReply
	CmdGetAttachment
	CmdFolderSync
	CmdFolderCreate
	CmdFolderDelete
	CmdFolderUpdate
	CmdMoveItems
	CmdGetItemEstimate
	CmdMeetingResponse
	CmdSearch
	CmdSettings
	CmdPing
	CmdItemOperations
	CmdProvision
	CmdResolveRecipients
	CmdValidateCert
	CmdFind
	numCommands
)

type commandInfo struct {
	name string
	code uint8 // MS-ASHTTP 2.2.1.1.1.1.2
	// min and max are the protocol versions that define the command (MS-ASCMD 2.2.1.x
	// "Protocol Versions" tables); max 0 means "still defined in the newest version".
	min, max Version
	// notIdempotent: a retry after an ambiguous failure can have a second visible effect
	// (a second message sent, a second meeting reply).
	notIdempotent bool
}

var commands = [numCommands]commandInfo{
	CmdNone:              {name: ""},
	CmdSync:              {name: "Sync", code: 0, min: V25},
	CmdSendMail:          {name: "SendMail", code: 1, min: V25, notIdempotent: true},
	CmdSmartForward:      {name: "SmartForward", code: 2, min: V25, notIdempotent: true},
	CmdSmartReply:        {name: "SmartReply", code: 3, min: V25, notIdempotent: true},
	CmdGetAttachment:     {name: "GetAttachment", code: 4, min: V25, max: V121},
	CmdFolderSync:        {name: "FolderSync", code: 9, min: V25},
	CmdFolderCreate:      {name: "FolderCreate", code: 10, min: V25},
	CmdFolderDelete:      {name: "FolderDelete", code: 11, min: V25},
	CmdFolderUpdate:      {name: "FolderUpdate", code: 12, min: V25},
	CmdMoveItems:         {name: "MoveItems", code: 13, min: V25},
	CmdGetItemEstimate:   {name: "GetItemEstimate", code: 14, min: V25},
	CmdMeetingResponse:   {name: "MeetingResponse", code: 15, min: V25, notIdempotent: true},
	CmdSearch:            {name: "Search", code: 16, min: V25},
	CmdSettings:          {name: "Settings", code: 17, min: V120},
	CmdPing:              {name: "Ping", code: 18, min: V25},
	CmdItemOperations:    {name: "ItemOperations", code: 19, min: V120},
	CmdProvision:         {name: "Provision", code: 20, min: V25},
	CmdResolveRecipients: {name: "ResolveRecipients", code: 21, min: V25},
	CmdValidateCert:      {name: "ValidateCert", code: 22, min: V25},
	CmdFind:              {name: "Find", code: 23, min: V161},
}

// codeToCommand maps an MS-ASHTTP command code to a Command; codes 5–8 (the retired
// GetHierarchy, CreateCollection, DeleteCollection and MoveCollection) and codes above 23
// map to CmdNone.
var codeToCommand = func() (t [256]Command) {
	for c := CmdSync; c < numCommands; c++ {
		t[commands[c].code] = c
	}
	t[0] = CmdSync
	return t
}()

// Commands lists every defined command in command-code order.
func Commands() []Command {
	out := make([]Command, 0, numCommands-1)
	for c := CmdSync; c < numCommands; c++ {
		out = append(out, c)
	}
	return out
}

// String returns the command name as written in the plain query (e.g. "FolderSync"), or
// "" for CmdNone and out-of-range values.
func (c Command) String() string {
	if c >= numCommands {
		return ""
	}
	return commands[c].name
}

// Valid reports whether c is one of the defined commands.
func (c Command) Valid() bool { return c > CmdNone && c < numCommands }

// Code returns the MS-ASHTTP base64 command code (MS-ASHTTP 2.2.1.1.1.1.2). ok is false for
// CmdNone and invalid values.
func (c Command) Code() (code uint8, ok bool) {
	if !c.Valid() {
		return 0, false
	}
	return commands[c].code, true
}

// CommandFromCode returns the command with the given MS-ASHTTP command code.
func CommandFromCode(code uint8) (Command, bool) {
	c := codeToCommand[code]
	return c, c != CmdNone
}

// ParseCommand returns the command named s. Matching ignores ASCII case, as clients and
// servers treat command names; the canonical spelling is Command.String.
func ParseCommand(s string) (Command, bool) {
	for c := CmdSync; c < numCommands; c++ {
		if equalFoldASCII(s, commands[c].name) {
			return c, true
		}
	}
	return CmdNone, false
}

func parseCommandBytes(b []byte) (Command, bool) {
	for c := CmdSync; c < numCommands; c++ {
		if equalFoldBytes(b, commands[c].name) {
			return c, true
		}
	}
	return CmdNone, false
}

// Idempotent reports whether resending the request after an ambiguous failure (a timeout
// after the request was written) is free of a second visible effect. SendMail, SmartReply,
// SmartForward and MeetingResponse submit a message, so a resend can deliver it twice.
// Sync, FolderSync and the Folder* commands are protected by their synchronization keys: a
// replayed key is answered from the server's state rather than applied twice.
func (c Command) Idempotent() bool { return c.Valid() && !commands[c].notIdempotent }

// LongPoll reports whether the command is a long-lived hanging request by definition
// (Ping). A Sync with a Wait or HeartbeatInterval element also hangs, but that is a
// property of its body, not of the command.
func (c Command) LongPoll() bool { return c == CmdPing }

// SupportedIn reports whether protocol version v defines the command (MS-ASCMD 2.2.1,
// "Protocol Versions" of each command): GetAttachment was removed in 14.0, Settings and
// ItemOperations arrived in 12.0, Find in 16.1.
func (c Command) SupportedIn(v Version) bool {
	if !c.Valid() || !v.Valid() {
		return false
	}
	ci := commands[c]
	return v >= ci.min && (ci.max == 0 || v <= ci.max)
}

// MIMEBody reports whether the request body of the command is a raw MIME message
// (Content-Type message/rfc822) instead of WBXML in version v: SendMail, SmartReply and
// SmartForward before 14.0 (MS-ASCMD 2.2.1.17, 2.2.1.19, 2.2.1.20).
func (c Command) MIMEBody(v Version) bool {
	switch c {
	case CmdSendMail, CmdSmartReply, CmdSmartForward:
		return v < V140
	}
	return false
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func equalFoldBytes(a []byte, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
