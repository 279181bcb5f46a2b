//! A shutdown signal every task can wait on, however late it starts waiting
//! (unlike `Notify::notify_waiters`, which only wakes tasks already waiting:
//! a worker busy with a job when the signal came would miss it).

use tokio::sync::watch;

/// Sets the signal once; dropping it does not set it.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

/// Cheap to clone; one per task.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// A new, unset signal.
pub fn shutdown_pair() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger { tx }, Shutdown { rx })
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }
}

impl Shutdown {
    pub fn is_set(&self) -> bool {
        *self.rx.borrow()
    }

    /// Returns once the signal is set (at once if it already is).
    pub async fn wait(&mut self) {
        // An error means the trigger is gone without firing: wait forever,
        // as a signal that never comes.
        if self.rx.wait_for(|set| *set).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_late_waiter_still_sees_the_signal() {
        let (trigger, mut late) = shutdown_pair();
        assert!(!late.is_set());
        trigger.trigger();
        // Starts waiting only after the signal: returns at once.
        tokio::time::timeout(Duration::from_secs(1), late.wait())
            .await
            .expect("a waiter that comes after the signal returns");
        assert!(late.is_set());
        let mut sub = trigger.subscribe();
        tokio::time::timeout(Duration::from_secs(1), sub.wait())
            .await
            .expect("a subscriber made after the signal returns");
    }

    #[tokio::test]
    async fn unset_signal_keeps_waiting() {
        let (_trigger, mut s) = shutdown_pair();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), s.wait())
                .await
                .is_err()
        );
    }
}
