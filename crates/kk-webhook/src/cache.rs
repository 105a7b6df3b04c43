//! A bounded TTL cache keyed by a SHA-256 hash of the token, with single flight.
//!
//! * The raw token is never stored: the key is `sha256(token)`.
//! * Each entry has two deadlines: `fresh_until`, after which the value is revalidated, and
//!   `usable_until` (at most the token's own expiry), until which a stale value may still be
//!   handed to the caller when revalidation fails (serving while Keystone is down).
//! * Concurrent lookups of one key that miss make **one** computation; the others wait for it
//!   ("coalesced"). If the computing task is cancelled, one waiter takes over.
//! * At capacity, expired entries go first, then the entries closest to the end of their life
//!   (a sixteenth of the cache at a time, so the O(n) sweep is paid once per n/16 inserts).
//!   Expired entries are also swept once a minute.
//! * One map and nothing else per entry: the key (32 bytes), the value and 16 bytes of times,
//!   about 90 bytes per entry with the map's own slack, so 100,000 cached tokens cost
//!   ~10 MiB. There is no separate eviction index; the sweep finds what to drop.
//!
//! Time is [`tokio::time::Instant`], so tests run with paused time.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::Instant;

use kk_core::metrics::Metrics;
use kk_core::secret::Secret;

/// A cache key: the SHA-256 of a token.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key([u8; 32]);

impl Key {
    /// The key of a token.
    pub fn of(token: &Secret) -> Self {
        Key(Sha256::digest(token.expose().as_bytes()).into())
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A short prefix of the hash is enough to correlate log lines and reveals nothing.
        f.write_str(&kk_core::hex::encode(&self.0[..4]))
    }
}

/// How long a computed value may be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// Served without revalidation for this long.
    pub fresh: Duration,
    /// Kept (for stale serving) for this long; at least `fresh`.
    pub usable: Duration,
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// A fresh entry.
    Hit,
    /// Computed by this caller.
    Miss,
    /// Computed by a concurrent caller, waited for.
    Coalesced,
}

impl CacheStatus {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Coalesced => "coalesced",
        }
    }
}

/// Times are milliseconds since the cache's `epoch`: 16 bytes in all, against 48 for three
/// `Instant`s. Lifetimes longer than `u32::MAX` ms (49 days) are shortened to that, never
/// lengthened.
struct Entry<V> {
    value: V,
    /// When the value was stored.
    stored: u64,
    /// Fresh for this long after `stored`. From its last fifth on, the first lookup
    /// revalidates while the others are still answered from the entry (refresh ahead).
    fresh: u32,
    /// Usable (stale serving) for this long after `stored`; at least `fresh`.
    usable: u32,
}

impl<V> Entry<V> {
    fn refresh_at(&self) -> u64 {
        self.stored + u64::from(self.fresh - self.fresh / 5)
    }
    fn fresh_until(&self) -> u64 {
        self.stored + u64::from(self.fresh)
    }
    fn usable_until(&self) -> u64 {
        self.stored + u64::from(self.usable)
    }
}

/// How often expired entries are swept even when the cache is not full.
const SWEEP_EVERY_MS: u64 = 60_000;

struct State<V> {
    entries: HashMap<Key, Entry<V>>,
    inflight: HashMap<Key, watch::Receiver<Option<V>>>,
    /// The next periodic sweep of expired entries.
    next_sweep: u64,
}

enum Step<V> {
    Hit(V),
    Lead(watch::Sender<Option<V>>),
    /// The entry is fresh but due: this caller revalidates it (the value is the fresh one).
    Refresh(watch::Sender<Option<V>>, V),
    Wait(watch::Receiver<Option<V>>),
    Poisoned,
}

/// The cache. Share it in an `Arc`.
pub struct TokenCache<V> {
    state: Mutex<State<V>>,
    /// The origin of the entries' millisecond times.
    epoch: Instant,
    max_entries: usize,
    metrics: Option<Arc<Metrics>>,
}

/// Removes the in-flight marker if the computing future is dropped before it finishes.
struct InflightGuard<'a, V> {
    cache: &'a TokenCache<V>,
    key: Key,
    armed: bool,
}

impl<V> Drop for InflightGuard<'_, V> {
    fn drop(&mut self) {
        if self.armed
            && let Ok(mut s) = self.cache.state.lock()
        {
            s.inflight.remove(&self.key);
        }
    }
}

impl<V: Clone> TokenCache<V> {
    /// A cache holding at most `max_entries` values (at least 1).
    pub fn new(max_entries: usize, metrics: Option<Arc<Metrics>>) -> Self {
        Self {
            state: Mutex::new(State {
                entries: HashMap::new(),
                inflight: HashMap::new(),
                next_sweep: SWEEP_EVERY_MS,
            }),
            epoch: Instant::now(),
            max_entries: max_entries.max(1),
            metrics,
        }
    }

    /// Number of entries (including stale ones not yet evicted).
    pub fn len(&self) -> usize {
        self.state.lock().map(|s| s.entries.len()).unwrap_or(0)
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Now, in milliseconds since `epoch`.
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn gauge(&self, len: usize) {
        if let Some(m) = &self.metrics {
            m.cache_entries
                .store(len as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The value for `key`: a fresh cached one, or the result of `compute`, run at most once at a
    /// time per key. `compute` gets the stale value still within its usable life (if any) and
    /// returns the value plus how long it may be cached (`None`: not at all). The caller counts
    /// the lookup (only it knows whether a computed answer was in fact the stale value).
    pub async fn get_or_compute<F, Fut>(&self, key: Key, compute: F) -> (V, CacheStatus)
    where
        F: FnOnce(Option<V>) -> Fut,
        Fut: Future<Output = (V, Option<Lifetime>)>,
    {
        let mut stale = None;
        // A waiter whose leader is cancelled retries; bounded, then computes on its own.
        for _ in 0..3 {
            match self.step(key, &mut stale) {
                Step::Hit(v) => {
                    return (v, CacheStatus::Hit);
                }
                Step::Lead(tx) => return self.lead(key, tx, stale, None, compute).await,
                Step::Refresh(tx, fresh) => {
                    return self.lead(key, tx, None, Some(fresh), compute).await;
                }
                Step::Wait(mut rx) => {
                    if let Ok(v) = rx.wait_for(Option::is_some).await
                        && let Some(v) = v.clone()
                    {
                        return (v, CacheStatus::Coalesced);
                    }
                }
                Step::Poisoned => break,
            }
        }
        let (v, _) = compute(stale).await;
        (v, CacheStatus::Miss)
    }

    /// One look at the state, without holding the lock across an `.await`.
    fn step(&self, key: Key, stale: &mut Option<V>) -> Step<V> {
        let Ok(mut s) = self.state.lock() else {
            return Step::Poisoned;
        };
        let now = self.now();
        if let Some(e) = s.entries.get(&key) {
            if now < e.fresh_until() {
                if now < e.refresh_at() || s.inflight.contains_key(&key) {
                    return Step::Hit(e.value.clone());
                }
                // Refresh ahead: one caller revalidates before the entry goes stale, so that
                // concurrent reviews of a busy token never all wait on Keystone at once.
                let fresh = e.value.clone();
                let (tx, rx) = watch::channel(None);
                s.inflight.insert(key, rx);
                return Step::Refresh(tx, fresh);
            }
            *stale = (now < e.usable_until()).then(|| e.value.clone());
        }
        if let Some(rx) = s.inflight.get(&key) {
            return Step::Wait(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        s.inflight.insert(key, rx);
        Step::Lead(tx)
    }

    /// Computes the value for `key` (this caller holds the in-flight marker). `fresh` is set
    /// when a fresh entry that is due is being revalidated (refresh ahead): a definite answer
    /// replaces it (a revoked token is refused from now on); an uncacheable one (Keystone
    /// down) leaves it as it was, and the caller gets the fresh value.
    async fn lead<F, Fut>(
        &self,
        key: Key,
        tx: watch::Sender<Option<V>>,
        stale: Option<V>,
        fresh: Option<V>,
        compute: F,
    ) -> (V, CacheStatus)
    where
        F: FnOnce(Option<V>) -> Fut,
        Fut: Future<Output = (V, Option<Lifetime>)>,
    {
        let mut guard = InflightGuard {
            cache: self,
            key,
            armed: true,
        };
        let (value, lifetime) = compute(fresh.clone().or(stale)).await;
        guard.armed = false;
        if let (Some(fresh), None) = (fresh, lifetime) {
            if let Ok(mut s) = self.state.lock() {
                s.inflight.remove(&key);
            }
            let _ = tx.send(Some(fresh.clone()));
            return (fresh, CacheStatus::Hit);
        }
        self.store(key, &value, lifetime);
        let _ = tx.send(Some(value.clone()));
        (value, CacheStatus::Miss)
    }

    fn store(&self, key: Key, value: &V, lifetime: Option<Lifetime>) {
        if let Ok(mut s) = self.state.lock() {
            s.inflight.remove(&key);
            if let Some(l) = lifetime {
                self.insert_locked(&mut s, key, value.clone(), l);
            } else if s
                .entries
                .get(&key)
                .is_some_and(|old| self.now() >= old.usable_until())
            {
                // An uncacheable answer (Keystone down) leaves a stale entry in place only if it
                // is still usable.
                s.entries.remove(&key);
            }
            let len = s.entries.len();
            drop(s);
            self.gauge(len);
        }
    }

    fn insert_locked(&self, s: &mut State<V>, key: Key, value: V, l: Lifetime) {
        let now = self.now();
        s.entries.remove(&key);
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        let (fresh, usable) = (ms(l.fresh), ms(l.usable.max(l.fresh)));
        if usable == 0 {
            return;
        }
        if now >= s.next_sweep || s.entries.len() >= self.max_entries {
            s.next_sweep = now.saturating_add(SWEEP_EVERY_MS);
            s.entries.retain(|_, e| e.usable_until() > now);
        }
        if s.entries.len() >= self.max_entries {
            Self::evict_nearest_end(&mut s.entries, (self.max_entries / 16).max(1));
        }
        s.entries.insert(
            key,
            Entry {
                value,
                stored: now,
                fresh,
                usable,
            },
        );
    }

    /// Drops the `n` entries closest to the end of their usable life (all of them if there
    /// are no more than `n`).
    fn evict_nearest_end(entries: &mut HashMap<Key, Entry<V>>, n: usize) {
        let mut ends: Vec<u64> = entries.values().map(Entry::usable_until).collect();
        let Some(nth) = n.checked_sub(1).filter(|&i| i < ends.len()) else {
            entries.clear();
            return;
        };
        let (below, &mut cut, _) = ends.select_nth_unstable(nth);
        // Everything ending before the cut goes, and as many ending at it as make up `n`.
        let mut at_cut = n - below.iter().filter(|&&end| end < cut).count();
        entries.retain(|_, e| {
            let end = e.usable_until();
            if end == cut && at_cut > 0 {
                at_cut -= 1;
                return false;
            }
            end >= cut
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn key(s: &str) -> Key {
        Key::of(&Secret::new(s))
    }

    fn life(fresh: u64, usable: u64) -> Option<Lifetime> {
        Some(Lifetime {
            fresh: Duration::from_secs(fresh),
            usable: Duration::from_secs(usable),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_due_entry_is_refreshed_by_one_caller_while_the_others_hit() {
        let cache = Arc::new(TokenCache::new(10, None));
        let (v, _) = cache
            .get_or_compute(key("t"), |_| async { ("old", life(10, 10)) })
            .await;
        assert_eq!(v, "old");
        // Before the last fifth of the fresh life: a plain hit, nothing computed.
        tokio::time::advance(Duration::from_millis(7_900)).await;
        let (v, status) = cache
            .get_or_compute(key("t"), |_| async { unreachable!("not due yet") })
            .await;
        assert_eq!((v, status), ("old", CacheStatus::Hit));
        // Due: the first caller revalidates (slowly); a concurrent one is answered at once.
        tokio::time::advance(Duration::from_millis(200)).await;
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let c = cache.clone();
        let refresher = tokio::spawn(async move {
            c.get_or_compute(key("t"), |stale| async move {
                assert_eq!(stale, Some("old"));
                let _ = wait.await;
                ("new", life(10, 10))
            })
            .await
        });
        tokio::task::yield_now().await;
        let (v, status) = cache
            .get_or_compute(key("t"), |_| async {
                unreachable!("one refresh at a time")
            })
            .await;
        assert_eq!((v, status), ("old", CacheStatus::Hit));
        release.send(()).unwrap();
        assert_eq!(refresher.await.unwrap(), ("new", CacheStatus::Miss));
        let (v, _) = cache
            .get_or_compute(key("t"), |_| async { unreachable!("fresh again") })
            .await;
        assert_eq!(v, "new");
        // A refresh that cannot decide (Keystone down: no lifetime) keeps the fresh entry and
        // answers with it.
        tokio::time::advance(Duration::from_millis(8_500)).await;
        let (v, status) = cache
            .get_or_compute(key("t"), |_| async { ("error", None) })
            .await;
        assert_eq!((v, status), ("new", CacheStatus::Hit));
        let (v, _) = cache
            .get_or_compute(key("t"), |_| async { ("error", None) })
            .await;
        assert_eq!(v, "new", "still fresh, refreshed again, kept again");
        // Past the fresh life it is gone (usable = fresh here).
        tokio::time::advance(Duration::from_millis(2_000)).await;
        let (v, _) = cache
            .get_or_compute(key("t"), |_| async { ("error", None) })
            .await;
        assert_eq!(v, "error");
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_their_fresh_time() {
        let cache = TokenCache::new(10, None);
        let calls = AtomicUsize::new(0);
        let compute = |_stale| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { ("v", life(30, 30)) }
        };
        assert_eq!(
            cache.get_or_compute(key("a"), compute).await.1,
            CacheStatus::Miss
        );
        // Before the refresh-ahead window (the last fifth: from 24 s).
        tokio::time::advance(Duration::from_secs(23)).await;
        assert_eq!(
            cache.get_or_compute(key("a"), compute).await.1,
            CacheStatus::Hit
        );
        tokio::time::advance(Duration::from_secs(8)).await;
        assert_eq!(
            cache.get_or_compute(key("a"), compute).await.1,
            CacheStatus::Miss
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn uncacheable_results_are_not_kept() {
        let cache = TokenCache::new(10, None);
        cache
            .get_or_compute(key("a"), |_| async { ("err", None) })
            .await;
        assert!(cache.is_empty());
        assert_eq!(
            cache
                .get_or_compute(key("a"), |_| async { ("ok", life(5, 5)) })
                .await,
            ("ok", CacheStatus::Miss)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stale_values_are_offered_until_their_usable_end() {
        let cache = TokenCache::new(10, None);
        cache
            .get_or_compute(key("a"), |_| async { ("v1", life(10, 100)) })
            .await;
        tokio::time::advance(Duration::from_secs(50)).await;
        let (v, _) = cache
            .get_or_compute(key("a"), |stale| async move {
                assert_eq!(stale, Some("v1"));
                (stale.unwrap_or("none"), None)
            })
            .await;
        assert_eq!(v, "v1");
        tokio::time::advance(Duration::from_secs(51)).await;
        cache
            .get_or_compute(key("a"), |stale| async move {
                assert_eq!(stale, None, "past the usable end nothing stale is offered");
                ("x", None)
            })
            .await;
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_misses_compute_once() {
        let cache = Arc::new(TokenCache::new(10, None));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_compute(key("t"), |_| async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        ("v", life(60, 60))
                    })
                    .await
            }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            let (v, s) = t.await.unwrap();
            assert_eq!(v, "v");
            statuses.push(s);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            statuses.iter().filter(|s| **s == CacheStatus::Miss).count(),
            1
        );
        assert_eq!(
            statuses
                .iter()
                .filter(|s| **s == CacheStatus::Coalesced)
                .count(),
            7
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_leader_hands_over_to_a_waiter() {
        let cache = Arc::new(TokenCache::new(10, None));
        let c2 = cache.clone();
        let leader = tokio::spawn(async move {
            c2.get_or_compute(key("t"), |_| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                ("never", life(1, 1))
            })
            .await
        });
        tokio::time::advance(Duration::from_millis(10)).await;
        let c3 = cache.clone();
        let waiter = tokio::spawn(async move {
            c3.get_or_compute(key("t"), |_| async { ("w", life(60, 60)) })
                .await
        });
        tokio::time::advance(Duration::from_millis(10)).await;
        leader.abort();
        let (v, s) = waiter.await.unwrap();
        assert_eq!((v, s), ("w", CacheStatus::Miss));
    }

    #[tokio::test(start_paused = true)]
    async fn size_is_bounded_and_soonest_to_expire_goes_first() {
        let cache = TokenCache::new(3, None);
        for (k, secs) in [("a", 100), ("b", 10), ("c", 50), ("d", 70)] {
            cache
                .get_or_compute(key(k), |_| async move { (k, life(secs, secs)) })
                .await;
        }
        assert_eq!(cache.len(), 3);
        // "b" had the shortest life left and was evicted.
        let (_, s) = cache
            .get_or_compute(key("b"), |_| async { ("b2", life(1, 1)) })
            .await;
        assert_eq!(s, CacheStatus::Miss);
        let (_, s) = cache
            .get_or_compute(key("a"), |_| async { ("a2", life(1, 1)) })
            .await;
        assert_eq!(s, CacheStatus::Hit);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_cache_drops_a_sixteenth_nearest_their_end_even_when_they_tie() {
        let cache = TokenCache::new(64, None);
        // 64 entries ending at the same instant, then one more: exactly 64 / 16 = 4 go.
        for i in 0..64 {
            cache
                .get_or_compute(key(&format!("same-{i}")), |_| async { ("v", life(60, 60)) })
                .await;
        }
        assert_eq!(cache.len(), 64);
        cache
            .get_or_compute(key("one-more"), |_| async { ("v", life(60, 60)) })
            .await;
        assert_eq!(cache.len(), 61);
        // Entries with more life left survive a full cache; the shortest-lived go first.
        let cache = TokenCache::new(32, None);
        for i in 0..32u64 {
            cache
                .get_or_compute(key(&format!("k{i}")), |_| async move {
                    ("v", life(10 + i, 10 + i))
                })
                .await;
        }
        cache
            .get_or_compute(key("new"), |_| async { ("v", life(5, 5)) })
            .await;
        assert_eq!(cache.len(), 31, "32 / 16 = 2 dropped, one added");
        for (k, status) in [("k0", CacheStatus::Miss), ("k1", CacheStatus::Miss)] {
            assert_eq!(
                cache
                    .get_or_compute(key(k), |_| async { ("v", None) })
                    .await
                    .1,
                status
            );
        }
        for i in 2..32 {
            let (_, status) = cache
                .get_or_compute(key(&format!("k{i}")), |_| async { ("x", None) })
                .await;
            assert_eq!(status, CacheStatus::Hit, "k{i}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_swept_without_a_full_cache() {
        let cache = TokenCache::new(1000, None);
        for i in 0..100 {
            cache
                .get_or_compute(key(&format!("k{i}")), |_| async { ("v", life(1, 1)) })
                .await;
        }
        assert_eq!(cache.len(), 100);
        // Past their life but before the sweep: still counted, never served.
        tokio::time::advance(Duration::from_secs(2)).await;
        cache
            .get_or_compute(key("other"), |_| async { ("v", life(600, 600)) })
            .await;
        assert_eq!(cache.len(), 101);
        tokio::time::advance(Duration::from_millis(SWEEP_EVERY_MS)).await;
        cache
            .get_or_compute(key("last"), |_| async { ("v", life(600, 600)) })
            .await;
        assert_eq!(cache.len(), 2, "the 100 expired entries were swept");
    }

    #[tokio::test(start_paused = true)]
    async fn lifetimes_beyond_49_days_are_shortened_not_lengthened() {
        let cache = TokenCache::new(10, None);
        let long = Duration::from_secs(100 * 24 * 3600);
        cache
            .get_or_compute(key("a"), |_| async move {
                (
                    "v",
                    Some(Lifetime {
                        fresh: long,
                        usable: long,
                    }),
                )
            })
            .await;
        tokio::time::advance(Duration::from_millis(u64::from(u32::MAX) + 1)).await;
        let (v, status) = cache
            .get_or_compute(key("a"), |stale| async move {
                assert_eq!(stale, None);
                ("again", None)
            })
            .await;
        assert_eq!((v, status), ("again", CacheStatus::Miss));
    }

    #[test]
    fn key_debug_shows_only_a_hash_prefix() {
        let k = key("gAAAAAsecret");
        let shown = format!("{k:?}");
        assert_eq!(shown.len(), 8);
        assert!(!shown.contains("secret"));
    }
}
