//! CPU-bound work shared out over the machine's cores: encoding columns, exploding records.
//!
//! The stages are async, but their heavy steps are plain CPU work on data already in memory;
//! running a step's shares on scoped threads uses every core without a thread pool to size.

/// How many threads CPU-bound steps use: the cores available to this process (an ECS task's
/// vCPUs), at least 1.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `work` on each share, the first on this thread and the others on scoped threads, and
/// returns the results in share order. A panic in a share is resumed here.
pub fn on_threads<S: Send, R: Send>(shares: Vec<S>, work: impl Fn(S) -> R + Sync) -> Vec<R> {
    let mut shares = shares.into_iter();
    let Some(first) = shares.next() else {
        return Vec::new();
    };
    std::thread::scope(|scope| {
        let others: Vec<_> = shares.map(|share| scope.spawn(|| work(share))).collect();
        let mut results = vec![work(first)];
        for handle in others {
            results.push(
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        results
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_share_order() {
        let shares: Vec<Vec<u64>> = (0..5).map(|i| (i * 10..i * 10 + 10).collect()).collect();
        let sums = on_threads(shares, |share| share.iter().sum::<u64>());
        assert_eq!(sums, vec![45, 145, 245, 345, 445]);
        assert!(on_threads(Vec::<u8>::new(), |_| 0).is_empty());
    }

    #[test]
    #[should_panic(expected = "share 3 failed")]
    fn a_panic_in_a_share_reaches_the_caller() {
        on_threads((0..4).collect(), |i: i32| {
            assert!(i != 3, "share {i} failed");
        });
    }
}
