//! A bounded TTL cache keyed by a SHA-256 hash of the token, with single flight.
//!
//! * The raw token is never stored: the key is `sha256(token)`.
//! * Each entry has two deadlines: `fresh_until`, after which the value is revalidated, and
//!   `usable_until` (at most the token's own expiry), until which a stale value may still be
//!   handed to the caller when revalidation fails (serving while Keystone is down).
//! * Concurrent lookups of one key that miss make **one** computation; the others wait for it
//!   ("coalesced"). If the computing task is cancelled, one waiter takes over.
//! * At capacity, expired entries go first, then the entry closest to the end of its life.
//!
//! Time is [`tokio::time::Instant`], so tests run with paused time.

use std::collections::{BTreeSet, HashMap};
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

struct Entry<V> {
    value: V,
    /// From here on (the last fifth of the fresh life) the first lookup revalidates while the
    /// others are still answered from the entry.
    refresh_at: Instant,
    fresh_until: Instant,
    usable_until: Instant,
    seq: u64,
}

struct State<V> {
    entries: HashMap<Key, Entry<V>>,
    /// (usable_until, seq, key): eviction order.
    order: BTreeSet<(Instant, u64, Key)>,
    inflight: HashMap<Key, watch::Receiver<Option<V>>>,
    seq: u64,
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
                order: BTreeSet::new(),
                inflight: HashMap::new(),
                seq: 0,
            }),
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
        let now = Instant::now();
        if let Some(e) = s.entries.get(&key) {
            if now < e.fresh_until {
                if now < e.refresh_at || s.inflight.contains_key(&key) {
                    return Step::Hit(e.value.clone());
                }
                // Refresh ahead: one caller revalidates before the entry goes stale, so that
                // concurrent reviews of a busy token never all wait on Keystone at once.
                let fresh = e.value.clone();
                let (tx, rx) = watch::channel(None);
                s.inflight.insert(key, rx);
                return Step::Refresh(tx, fresh);
            }
            *stale = (now < e.usable_until).then(|| e.value.clone());
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
            } else if let Some(old) = s.entries.remove(&key) {
                // An uncacheable answer (Keystone down) leaves a stale entry in place only if it
                // is still usable; put it back unchanged.
                if Instant::now() < old.usable_until {
                    s.entries.insert(key, old);
                } else {
                    s.order.remove(&(old.usable_until, old.seq, key));
                }
            }
            let len = s.entries.len();
            drop(s);
            self.gauge(len);
        }
    }

    fn insert_locked(&self, s: &mut State<V>, key: Key, value: V, l: Lifetime) {
        let now = Instant::now();
        if let Some(old) = s.entries.remove(&key) {
            s.order.remove(&(old.usable_until, old.seq, key));
        }
        if l.fresh.is_zero() && l.usable.is_zero() {
            return;
        }
        // Drop what has expired, then the entries nearest to their end, until there is room.
        while let Some(&(until, seq, k)) = s.order.first() {
            if until > now && s.entries.len() < self.max_entries {
                break;
            }
            s.order.remove(&(until, seq, k));
            s.entries.remove(&k);
        }
        s.seq += 1;
        let seq = s.seq;
        let usable_until = now + l.usable.max(l.fresh);
        s.order.insert((usable_until, seq, key));
        s.entries.insert(
            key,
            Entry {
                value,
                refresh_at: now + l.fresh - l.fresh / 5,
                fresh_until: now + l.fresh,
                usable_until,
                seq,
            },
        );
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

    #[test]
    fn key_debug_shows_only_a_hash_prefix() {
        let k = key("gAAAAAsecret");
        let shown = format!("{k:?}");
        assert_eq!(shown.len(), 8);
        assert!(!shown.contains("secret"));
    }
}
