package bench

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// Command is an EAS command the simulated devices send.
type Command uint8

const (
	CmdSync Command = iota
	CmdFolderSync
	CmdPing
	CmdSendMail
	CmdItemOperations
	numCommands
)

var cmdNames = [numCommands]string{"Sync", "FolderSync", "Ping", "SendMail", "ItemOperations"}

// cmdCodes are the MS-ASHTTP 2.2.1.1.1.1.2 base64 command codes.
var cmdCodes = [numCommands]byte{CmdSync: 0, CmdFolderSync: 9, CmdPing: 18, CmdSendMail: 1, CmdItemOperations: 19}

func (c Command) String() string {
	if c < numCommands {
		return cmdNames[c]
	}
	return fmt.Sprintf("Command(%d)", uint8(c))
}

// ParseCommand maps an EAS command name to a Command.
func ParseCommand(name string) (Command, bool) {
	for i, n := range cmdNames {
		if n == name {
			return Command(i), true
		}
	}
	return 0, false
}

// Device is one simulated EAS device: its own user, DeviceId, DeviceType, User-Agent and
// credentials, and the query form it uses (MS-ASHTTP 2.2.1.1.1: plain, or base64 as iOS and
// Outlook mobile send it).
type Device struct {
	User       string
	Password   string
	DeviceID   string // 1–32 ASCII letters and digits
	DeviceType string
	UserAgent  string
	Base64     bool
	PolicyKey  uint32 // 0: none sent

	auth    string              // Authorization header value
	queries [numCommands]string // precomputed request URI query per command
}

// deviceKinds are the client families of a realistic fleet.
var deviceKinds = []struct{ typ, ua string }{
	{"iPhone", "Apple-iPhone15C2/2104.261"},
	{"Android", "Android-Mail/2024.11.03.598467523.Release"},
	{"Outlook", "Outlook-iOS-Android/1.0"},
	{"WindowsMail", "MSFT-WIN-3/10.0.22631"},
	{"iPad", "Apple-iPad13C1/2104.261"},
}

// NewFleet returns n devices with distinct users and device IDs. Every third device uses the
// base64 query form. The fleet is the same for the same n (no randomness), so rounds against
// different targets send the same requests.
func NewFleet(n int) []Device {
	fleet := make([]Device, n)
	for i := range fleet {
		k := deviceKinds[i%len(deviceKinds)]
		d := Device{
			User:       fmt.Sprintf("user%05d", i),
			Password:   fmt.Sprintf("pw-%05d-bench", i),
			DeviceID:   fmt.Sprintf("BENCH%011dX", i*7919),
			DeviceType: k.typ,
			UserAgent:  k.ua,
			Base64:     i%3 == 2,
			PolicyKey:  uint32(3_000_000_000 + i),
		}
		d.init()
		fleet[i] = d
	}
	return fleet
}

func (d *Device) init() {
	d.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(d.User+":"+d.Password))
	for c := Command(0); c < numCommands; c++ {
		if d.Base64 {
			d.queries[c] = d.base64Query(c)
		} else {
			d.queries[c] = d.plainQuery(c)
		}
	}
}

// Query returns the request URI query string (without '?') for cmd.
func (d *Device) Query(cmd Command) string {
	if d.auth == "" {
		d.init()
	}
	return d.queries[cmd]
}

// Authorization returns the device's Basic Authorization header value.
func (d *Device) Authorization() string {
	if d.auth == "" {
		d.init()
	}
	return d.auth
}

func (d *Device) plainQuery(cmd Command) string {
	q := "Cmd=" + cmd.String() + "&User=" + d.User + "&DeviceId=" + d.DeviceID + "&DeviceType=" + d.DeviceType
	if cmd == CmdSendMail {
		q += "&SaveInSent=T"
	}
	return q
}

// base64Query encodes MS-ASHTTP 2.2.1.1.1.1: version, command code, locale, DeviceId,
// policy key, DeviceType, then tag/length/value parameters; base64, then percent-encoded for
// the URL.
func (d *Device) base64Query(cmd Command) string {
	b := []byte{141, cmdCodes[cmd], 0x09, 0x04} // 14.1, command, locale en-US (0x0409 LE)
	b = append(b, byte(len(d.DeviceID)))
	b = append(b, d.DeviceID...)
	if d.PolicyKey != 0 {
		k := d.PolicyKey
		b = append(b, 4, byte(k), byte(k>>8), byte(k>>16), byte(k>>24))
	} else {
		b = append(b, 0)
	}
	b = append(b, byte(len(d.DeviceType)))
	b = append(b, d.DeviceType...)
	b = append(b, 8, byte(len(d.User))) // User
	b = append(b, d.User...)
	if cmd == CmdSendMail {
		b = append(b, 7, 1, 0x01) // Options: SaveInSent
	}
	s := base64.StdEncoding.EncodeToString(b)
	return strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(s)
}
