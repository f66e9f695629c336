//! A failure classed once: the one trait every stage's errors implement, and the one way an
//! error, or work that turned out to be unnecessary, becomes what the [runner](crate::runner)
//! does with the message.
//!
//! - An error says whether it may go away by itself ([`Transience::is_transient`]): storage or
//!   catalog unavailable, throttled, a network fault. Everything about the data itself is
//!   permanent. [`Transience::into_failure`] turns it into [`Failure::Transient`] or
//!   [`Failure::Permanent`], nothing else does.
//! - Work that is already done is not an error but a value, [`Outcome::UpToDate`], which the
//!   runner acknowledges with a warning ([`Failure::Discard`], see [`handled`]).

use crate::runner::Failure;

/// Whether an error may go away by itself, so that the same message may succeed later.
pub trait Transience {
    /// True when the same message may succeed later (storage or catalog unavailable,
    /// throttled); false when it never will (bad data, a failed gate, a bug).
    fn is_transient(&self) -> bool;

    /// The runner's class of this error: transient (left on the queue) or permanent (to the
    /// dead-letter queue, with the error as the reason).
    fn into_failure(self) -> Failure
    where
        Self: std::error::Error + Send + Sync + Sized + 'static,
    {
        if self.is_transient() {
            Failure::transient(self)
        } else {
            Failure::permanent(self)
        }
    }
}

/// What a stage's work came to when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// The work was done: its result.
    Done(T),
    /// Nothing to do (the output is already there): why, for the runner's warning.
    UpToDate(String),
}

impl<T> Outcome<T> {
    pub fn done(self) -> Option<T> {
        match self {
            Outcome::Done(done) => Some(done),
            Outcome::UpToDate(_) => None,
        }
    }
}

/// A stage's result as the runner acts on it: `Ok` with the work's result, [`Failure::Discard`]
/// when there was nothing to do, or the error's class ([`Transience::into_failure`]).
pub fn handled<T, E>(result: Result<Outcome<T>, E>) -> Result<T, Failure>
where
    E: Transience + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(Outcome::Done(done)) => Ok(done),
        Ok(Outcome::UpToDate(reason)) => Err(Failure::Discard(reason)),
        Err(err) => Err(err.into_failure()),
    }
}

// The errors of `common` itself implement this trait next to their types.

impl<E: Transience + ?Sized> Transience for Box<E> {
    fn is_transient(&self) -> bool {
        E::is_transient(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::GateError;
    use crate::storage::StorageError;

    fn storage(transient: bool) -> StorageError {
        StorageError::failed("put", "b", "k", "SlowDown", transient)
    }

    #[test]
    fn the_class_follows_the_error() {
        assert!(matches!(
            storage(true).into_failure(),
            Failure::Transient(_)
        ));
        assert!(matches!(
            storage(false).into_failure(),
            Failure::Permanent(_)
        ));
        let gate = GateError::Failed {
            partition: "appeals parsed import_date=20261121".into(),
            failures: "missing_id = 1 (threshold 0)".into(),
        };
        let failure = gate.into_failure();
        assert!(matches!(failure, Failure::Permanent(_)));
        assert_eq!(
            failure.to_string(),
            "appeals parsed import_date=20261121: data-quality gate failed, nothing published: missing_id = 1 (threshold 0)"
        );
    }

    #[test]
    fn up_to_date_is_discarded_with_its_reason_and_done_is_passed_on() {
        let done: Result<Outcome<u32>, StorageError> = Ok(Outcome::Done(3));
        assert_eq!(handled(done).unwrap(), 3);
        let up_to_date: Result<Outcome<u32>, StorageError> =
            Ok(Outcome::UpToDate("already merged".into()));
        let failure = handled(up_to_date).unwrap_err();
        assert!(matches!(&failure, Failure::Discard(reason) if reason == "already merged"));
        let busy: Result<Outcome<u32>, StorageError> = Err(storage(true));
        assert!(matches!(handled(busy), Err(Failure::Transient(_))));
        assert_eq!(Outcome::Done(1).done(), Some(1));
        assert_eq!(Outcome::<u32>::UpToDate(String::new()).done(), None);
    }
}
