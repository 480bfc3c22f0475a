package decision

// Test hooks, compiled only into this package's tests.

// DropCacheSets makes every cache Set fail, as ristretto does when its buffers are full.
func DropCacheSets(e *Engine) { e.cacheSet = func(uint64, *entry) bool { return false } }

// Evict removes a device from the cache as the ristretto eviction policy would.
func Evict(e *Engine, user, deviceID string) {
	e.cache.Del(e.key(user, deviceID))
	e.cache.Wait()
}

// Cached reports whether a device is in the cache.
func Cached(e *Engine, user, deviceID string) bool {
	ent, ok := e.cache.Get(e.key(user, deviceID))
	return ok && ent.user == user && ent.deviceID == deviceID
}

// BareGet is the raw ristretto lookup Decide performs on a hit, for the baseline benchmark.
func BareGet(e *Engine, user, deviceID string) bool {
	_, ok := e.cache.Get(e.key(user, deviceID))
	return ok
}

// Refreshing reports whether a device's record is being re-read.
func Refreshing(e *Engine, user, deviceID string) bool {
	ent, ok := e.cache.Get(e.key(user, deviceID))
	return ok && ent.refreshing.Load()
}
