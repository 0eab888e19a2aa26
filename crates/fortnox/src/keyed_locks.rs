//! One async mutex per key (per merchant), for the service and the client alike.
//!
//! Written by hand: no well-kept crate offers a keyed async mutex, and this one
//! is a map of `tokio::sync::Mutex`es that forgets a key's mutex as soon as no
//! one holds or waits for it, so the map does not grow with every key ever used.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

type Map<K> = Arc<Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>>;

/// Cloning shares the locks.
#[derive(Debug)]
pub struct KeyedLocks<K> {
    locks: Map<K>,
}

impl<K> Clone for KeyedLocks<K> {
    fn clone(&self) -> Self {
        KeyedLocks {
            locks: self.locks.clone(),
        }
    }
}

impl<K> Default for KeyedLocks<K> {
    fn default() -> Self {
        KeyedLocks {
            locks: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

/// Holds the key's lock until dropped.
#[must_use = "the lock is released when the guard is dropped"]
pub struct KeyedGuard<K: Eq + Hash> {
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    key: Option<K>,
    locks: Map<K>,
}

fn map<K>(locks: &Map<K>) -> MutexGuard<'_, HashMap<K, Arc<tokio::sync::Mutex<()>>>> {
    // The map is consistent after any panic (one insert or remove at a time).
    locks.lock().unwrap_or_else(|e| e.into_inner())
}

impl<K: Eq + Hash + Clone> KeyedLocks<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for the key's lock. A task cancelled while waiting leaves the
    /// key's mutex in the map until the key's next unlock forgets it.
    pub async fn lock(&self, key: K) -> KeyedGuard<K> {
        let mutex = map(&self.locks).entry(key.clone()).or_default().clone();
        let guard = mutex.lock_owned().await;
        KeyedGuard {
            guard: Some(guard),
            key: Some(key),
            locks: self.locks.clone(),
        }
    }

    /// Keys with a mutex in the map: held or waited for.
    pub fn len(&self) -> usize {
        map(&self.locks).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Eq + Hash> Drop for KeyedGuard<K> {
    fn drop(&mut self) {
        // Under the map's lock, so no one can take the mutex out of the map
        // between the release and the check.
        let mut locks = map(&self.locks);
        drop(self.guard.take());
        if let Some(key) = self.key.take() {
            // Only the map's own reference left: no holder, no waiter.
            if locks.get(&key).is_some_and(|m| Arc::strong_count(m) == 1) {
                locks.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::KeyedLocks;
    use std::time::Duration;

    #[tokio::test]
    async fn one_holder_per_key_and_unused_keys_are_forgotten() {
        let locks = KeyedLocks::new();
        let a = locks.lock(1).await;
        let _b = locks.lock(2).await;
        assert_eq!(locks.len(), 2);
        let waiter = tokio::spawn({
            let locks = locks.clone();
            async move {
                let _a = locks.lock(1).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "key 1 is held");
        drop(a);
        waiter.await.expect("the waiter gets the lock");
        assert_eq!(locks.len(), 1, "key 1 forgotten, key 2 still held");
        drop(_b);
        assert!(locks.is_empty());
    }
}
