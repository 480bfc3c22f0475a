package imap

import "context"

// StateStore keeps what the backend must remember between requests for each (user, device):
// FolderSync hierarchy state, per-collection Sync state, the items each device already holds
// and the last answers (so a retried request is answered identically, MS-ASCMD 2.2.3.166.4 and
// 2.2.3.166.2). It is owned by the caller of New; implementations must be safe for concurrent
// use. SQLiteStore is the embedded implementation.
//
// Every method takes user and device exactly as the EAS request carries them; a store never
// mixes the state of two devices. Values returned are copies the caller owns.
type StateStore interface {
	// Hierarchy returns the FolderSync state of (user, device); the zero HierarchyState (SyncKey
	// 0, no folders) when none is stored.
	Hierarchy(ctx context.Context, user, device string) (HierarchyState, error)
	// SaveHierarchy replaces the FolderSync state of (user, device).
	SaveHierarchy(ctx context.Context, user, device string, st HierarchyState) error

	// FolderID returns the stable collection id of an IMAP mailbox for user, assigning a new
	// one when the mailbox has none. Ids are shared by all devices of the user.
	FolderID(ctx context.Context, user, mailbox string) (string, error)
	// RenameFolder moves the id of mailbox oldName to newName (and of its children, whose
	// names start with oldName+delim).
	RenameFolder(ctx context.Context, user, oldName, newName string, delim rune) error

	// Collection returns the Sync state of one collection; the zero CollectionState when none.
	Collection(ctx context.Context, user, device, collection string) (CollectionState, error)
	// Items returns the items the device holds in the collection, keyed by IMAP UID.
	Items(ctx context.Context, user, device, collection string) (map[uint32]ItemFlags, error)
	// CommitCollection atomically stores st and applies the item changes: when reset is true
	// every stored item of the collection is dropped first; then upsert is written and drop
	// removed. After an error nothing of the commit is visible.
	CommitCollection(ctx context.Context, user, device, collection string, st CollectionState, reset bool, upsert map[uint32]ItemFlags, drop []uint32) error
	// DeleteCollection forgets a collection of (user, device): its state and items.
	DeleteCollection(ctx context.Context, user, device, collection string) error

	// SaveRequest remembers the last request body of kind ("Sync", "Ping") for (user, device),
	// for the empty and partial requests MS-ASCMD allows (2.2.3.166.4 empty Sync, Ping without
	// Folders).
	SaveRequest(ctx context.Context, user, device, kind string, body []byte) error
	// LastRequest returns what SaveRequest stored, or nil.
	LastRequest(ctx context.Context, user, device, kind string) ([]byte, error)
}

// ItemFlags is the part of a message's state a device mirrors and that Sync reports as a
// Change: read and flagged.
type ItemFlags uint8

// Item flag bits.
const (
	FlagSeen    ItemFlags = 1 << iota // \Seen, EAS Email:Read
	FlagFlagged                       // \Flagged, EAS Email:Flag Status 2
)

// HierarchyState is the FolderSync state of one device.
type HierarchyState struct {
	// SyncKey is the current hierarchy key; 0 means the device has never synchronised.
	SyncKey uint64
	// PrevKey is the key before SyncKey and LastAnswer the encoded FolderSync response that
	// moved the device from PrevKey to SyncKey, sent again when the device retries PrevKey.
	PrevKey    uint64
	LastAnswer []byte
	// Counter is the highest key ever issued, so keys are never reused after a reset.
	Counter uint64
	// Folders is what the device holds.
	Folders []Folder
}

// Folder is one folder as a device knows it.
type Folder struct {
	ID          string // collection id (FolderHierarchy:ServerId)
	ParentID    string // "0" for the root
	DisplayName string
	Mailbox     string // IMAP mailbox name
	Type        int    // MS-ASCMD 2.2.3.186.3 folder type
}

// CollectionState is the Sync state of one collection of one device.
type CollectionState struct {
	// SyncKey is the current key (0: none). PrevKey and LastAnswer as in HierarchyState:
	// LastAnswer is the encoded Collection element sent in answer to PrevKey.
	SyncKey    uint64
	PrevKey    uint64
	LastAnswer []byte
	Counter    uint64
	// Mailbox is the IMAP mailbox and UIDValidity its UIDVALIDITY when the items were recorded;
	// a different UIDVALIDITY invalidates every item (RFC 3501 2.3.1.1).
	Mailbox     string
	UIDValidity uint32
	// ModSeq, UIDNext and Count describe the mailbox when the device last became complete
	// (every change delivered); ModSeq is 0 without CONDSTORE. Complete is false while changes
	// remain (MoreAvailable) — Ping then reports the folder.
	ModSeq   uint64
	UIDNext  uint32
	Count    uint32
	Complete bool
	// FilterType is the Sync FilterType in force (0: all).
	FilterType int
}
