package eas

import "strconv"

// Version is an ActiveSync protocol version. Its value is the number the base64-encoded
// query carries in its "Protocol version" byte (MS-ASHTTP 2.2.1.1.1.1): major*10+minor, so
// 14.1 is 141 and versions compare with < and >. The zero value means "no version".
type Version uint16

// The protocol versions defined by MS-ASCMD.
const (
	V25  Version = 25
	V120 Version = 120
	V121 Version = 121
	V140 Version = 140
	V141 Version = 141
	V160 Version = 160
	V161 Version = 161
)

var versionStrings = [...]struct {
	v Version
	s string
}{
	{V25, "2.5"}, {V120, "12.0"}, {V121, "12.1"}, {V140, "14.0"}, {V141, "14.1"},
	{V160, "16.0"}, {V161, "16.1"},
}

// SupportedVersions returns every protocol version the package understands, oldest first.
func SupportedVersions() []Version {
	out := make([]Version, len(versionStrings))
	for i, vs := range versionStrings {
		out[i] = vs.v
	}
	return out
}

// Valid reports whether v is one of the defined protocol versions.
func (v Version) Valid() bool {
	for _, vs := range versionStrings {
		if vs.v == v {
			return true
		}
	}
	return false
}

// String formats v as in the MS-ASProtocolVersion header ("14.1"). Undefined values are
// formatted from their number so that logs stay informative ("v999").
func (v Version) String() string {
	for _, vs := range versionStrings {
		if vs.v == v {
			return vs.s
		}
	}
	return "v" + strconv.Itoa(int(v))
}

// Byte returns the value of the base64 query's protocol version byte. ok is false for
// versions the base64 form cannot carry: MS-ASHTTP 2.2.1.1.1.1 allows it only for 12.1 and
// later.
func (v Version) Byte() (b byte, ok bool) {
	if !v.Valid() || v < V121 {
		return 0, false
	}
	return byte(v), true
}

// ParseVersion parses a version as written in the MS-ASProtocolVersion header ("2.5",
// "14.1"). Only the defined versions are accepted.
func ParseVersion(s string) (Version, bool) {
	for _, vs := range versionStrings {
		if vs.s == s {
			return vs.v, true
		}
	}
	return 0, false
}

func parseVersionBytes(b []byte) (Version, bool) {
	for _, vs := range versionStrings {
		if string(b) == vs.s {
			return vs.v, true
		}
	}
	return 0, false
}

// VersionFromByte converts the base64 query's protocol version byte. Only 121, 140, 141,
// 160 and 161 are accepted (MS-ASHTTP 2.2.1.1.1.1).
func VersionFromByte(b byte) (Version, bool) {
	v := Version(b)
	if _, ok := v.Byte(); !ok {
		return 0, false
	}
	return v, true
}

// ProtocolVersionsHeader formats vs as the value of the MS-ASProtocolVersions response
// header of the OPTIONS command (MS-ASHTTP 2.2.2.1.2.4), e.g. "2.5,12.0,12.1". Invalid
// versions are skipped.
func ProtocolVersionsHeader(vs []Version) string {
	b := make([]byte, 0, 5*len(vs))
	for _, v := range vs {
		if !v.Valid() {
			continue
		}
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = append(b, v.String()...)
	}
	return string(b)
}

// ProtocolCommandsHeader formats the commands of cmds that at least one of vs defines as the
// value of the MS-ASProtocolCommands response header of the OPTIONS command
// (MS-ASHTTP 2.2.2.1.2.3), e.g. "Sync,SendMail,...". Passing nil cmds means every command.
func ProtocolCommandsHeader(cmds []Command, vs []Version) string {
	if cmds == nil {
		cmds = Commands()
	}
	b := make([]byte, 0, 16*len(cmds))
	for _, c := range cmds {
		ok := false
		for _, v := range vs {
			if c.SupportedIn(v) {
				ok = true
				break
			}
		}
		if !ok {
			continue
		}
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = append(b, c.String()...)
	}
	return string(b)
}
