//! The due index's queues: the shard each queued issuance is in, which shards a poll run lists
//! (routinely the configured ones, in a periodic sweep every possible one), the shard groups a
//! fanned-out poll schedule drains, and the single queue of the releases before sharding.

use crate::clock::Timestamp;
use crate::issuance::IssuanceId;
use crate::store::QueueName;

/// The single due queue of the releases before the queue was sharded. It is still drained, so
/// the records an older release queued there keep being polled; each moves to its shard on its
/// next claim.
pub const LEGACY_POLL_QUEUE: &str = "poll";

/// The most shards the due queue may be spread over; the status poller drains all of them.
pub const MAX_POLL_SHARDS: u16 = 64;

/// The default shard count (`POLL_SHARDS`).
pub const DEFAULT_POLL_SHARDS: u16 = 8;

/// The default minutes between two sweeps of every possible shard (`POLL_SWEEP_MINUTES`).
pub const DEFAULT_SWEEP_MINUTES: u16 = 10;

/// The longest interval between two sweeps, in minutes.
pub const MAX_SWEEP_MINUTES: u16 = 60;

/// How the due index is spread: every queued issuance is in shard `poll-NN`, chosen from its id,
/// so that no index partition takes more than its share of the writes (a DynamoDB index
/// partition takes on the order of 1,000 writes/s). Every record moves between the queue and the
/// poller through its own shard. A routine poll run lists the configured shards; a periodic sweep
/// ([`SweepEvery`]) lists every possible one, so that the count can be lowered without stranding
/// a record in a shard no routine run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollShards(u16);

impl Default for PollShards {
    fn default() -> Self {
        Self(DEFAULT_POLL_SHARDS)
    }
}

impl PollShards {
    /// `count` shards, 1 to [`MAX_POLL_SHARDS`].
    pub fn new(count: u16) -> Option<Self> {
        (1..=MAX_POLL_SHARDS)
            .contains(&count)
            .then_some(Self(count))
    }

    /// Reads `POLL_SHARDS` (default 8, 1–64). The issue function and the status poller read
    /// the same value (the template sets it for both); while they disagree, during a deployment
    /// that changes it, the records queued in shards the poller does not list routinely wait for
    /// its next sweep.
    pub fn from_env(r: &crate::config::EnvReader<'_>) -> Result<Self, crate::config::ConfigError> {
        let count: u16 = r.parsed_or("POLL_SHARDS", DEFAULT_POLL_SHARDS)?;
        Self::new(count).ok_or_else(|| {
            crate::config::ConfigError::new(
                "POLL_SHARDS",
                format!("must be between 1 and {MAX_POLL_SHARDS}"),
            )
        })
    }

    /// How many shards new entries are spread over.
    pub fn count(self) -> u16 {
        self.0
    }

    /// The shard of issuance `id`: the first 32 bits of its (uniformly distributed, hex) id
    /// modulo the count.
    pub fn queue_for(self, id: &IssuanceId) -> QueueName {
        let hex = id.as_str().trim_start_matches("iss_");
        let bits = hex
            .get(..8)
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .unwrap_or(0);
        let shard = bits % u32::from(self.0);
        shard_queue(u16::try_from(shard).unwrap_or(0))
    }
}

/// Which queues one poll run lists. Both include the legacy queue, which is empty except after an
/// upgrade from a release before sharding (one index query per run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// A routine run: the shards new entries go to, `poll-00` up to the count.
    Configured(PollShards),
    /// A sweep: every possible shard, which finds the records left in shards above the count
    /// after it was lowered.
    Sweep,
}

impl Listing {
    /// How many shards, from `poll-00`, the run lists.
    pub fn shards(self) -> u16 {
        match self {
            Self::Configured(shards) => shards.count(),
            Self::Sweep => MAX_POLL_SHARDS,
        }
    }

    /// Whether this is a sweep of every possible shard.
    pub fn is_sweep(self) -> bool {
        matches!(self, Self::Sweep)
    }
}

/// How often a poll run sweeps every possible shard: the runs that start in the first minute of
/// each `minutes`-minute window (counted in whole minutes since the Unix epoch) sweep, the others
/// list the configured shards only. With the template's one-minute schedule that is one run in
/// every `minutes`, and it costs nothing to remember: the clock decides.
///
/// Why not sweep every run: listing all 64 shards is 65 index queries a run, most of them of empty
/// shards, and with the default 8 shards a routine run needs 9. The price is that after the count is
/// lowered, a record still queued above it waits for the next sweep: at most `minutes` minutes
/// more (a schedule whose run misses the window's first minute, which EventBridge's jitter can
/// do, makes it one window more). `1` sweeps every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepEvery(u16);

impl Default for SweepEvery {
    fn default() -> Self {
        Self(DEFAULT_SWEEP_MINUTES)
    }
}

impl SweepEvery {
    /// Every `minutes` minutes, 1 to [`MAX_SWEEP_MINUTES`].
    pub fn new(minutes: u16) -> Option<Self> {
        (1..=MAX_SWEEP_MINUTES)
            .contains(&minutes)
            .then_some(Self(minutes))
    }

    /// Reads `POLL_SWEEP_MINUTES` (default 10, 1–60).
    pub fn from_env(r: &crate::config::EnvReader<'_>) -> Result<Self, crate::config::ConfigError> {
        let minutes: u16 = r.parsed_or("POLL_SWEEP_MINUTES", DEFAULT_SWEEP_MINUTES)?;
        Self::new(minutes).ok_or_else(|| {
            crate::config::ConfigError::new(
                "POLL_SWEEP_MINUTES",
                format!("must be between 1 and {MAX_SWEEP_MINUTES}"),
            )
        })
    }

    /// The interval in minutes.
    pub fn minutes(self) -> u16 {
        self.0
    }

    /// What a run started at `started` lists, with `shards` configured.
    pub fn listing(self, shards: PollShards, started: Timestamp) -> Listing {
        let minute = started.as_secs().div_euclid(60);
        if minute.rem_euclid(i64::from(self.0)) == 0 {
            Listing::Sweep
        } else {
            Listing::Configured(shards)
        }
    }
}

/// One of `of` groups of the listed queues, for a schedule that fans the poll out over several
/// invocations: group `index` lists the legacy queue (group 0 only) and the listed shards `k`
/// with `k % of == index`. The groups of one `of` cover every listed queue exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardGroup {
    index: u16,
    of: u16,
}

impl ShardGroup {
    /// Every queue: one invocation drains all.
    pub const ALL: Self = Self { index: 0, of: 1 };

    /// Group `index` of `of` (`of` 1 to [`MAX_POLL_SHARDS`], `index < of`).
    pub fn new(index: u16, of: u16) -> Option<Self> {
        ((1..=MAX_POLL_SHARDS).contains(&of) && index < of).then_some(Self { index, of })
    }

    /// The queues this group lists in a run of `listing`.
    pub fn queues(self, listing: Listing) -> Vec<QueueName> {
        let legacy = (self.index == 0).then(legacy_poll_queue);
        legacy
            .into_iter()
            .chain(
                (0..listing.shards())
                    .filter(|k| k % self.of == self.index)
                    .map(shard_queue),
            )
            .collect()
    }
}

fn shard_queue(shard: u16) -> QueueName {
    QueueName::new(&format!("poll-{shard:02}"))
        .unwrap_or_else(|_| unreachable!("a valid queue name"))
}

/// The pre-sharding queue's name ([`LEGACY_POLL_QUEUE`]).
pub fn legacy_poll_queue() -> QueueName {
    QueueName::new(LEGACY_POLL_QUEUE)
        .unwrap_or_else(|_| unreachable!("a valid constant queue name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuances_spread_evenly_over_the_shards_and_each_keeps_its_shard() {
        let shards = PollShards::new(8).unwrap();
        let mut counts = std::collections::BTreeMap::new();
        for i in 0..8_000 {
            let id = IssuanceId::derive("pk_a", &format!("k{i}"));
            let queue = shards.queue_for(&id);
            assert_eq!(shards.queue_for(&id), queue);
            *counts.entry(queue.as_str().to_owned()).or_insert(0u32) += 1;
        }
        assert_eq!(counts.len(), 8);
        // 1,000 expected per shard; a hash skewed by more than 15 % would be a defect.
        assert!(
            counts.values().all(|&n| (850..=1150).contains(&n)),
            "{counts:?}"
        );
        let swept = ShardGroup::ALL.queues(Listing::Sweep);
        assert_eq!(swept.len(), 1 + usize::from(MAX_POLL_SHARDS));
        assert_eq!(swept[0].as_str(), "poll");
        let routine = ShardGroup::ALL.queues(Listing::Configured(shards));
        let names = |queues: &[QueueName]| -> Vec<String> {
            let mut names: Vec<String> = queues.iter().map(|q| q.as_str().to_owned()).collect();
            names.sort();
            names
        };
        // A routine run lists the legacy queue and exactly the shards entries go to.
        let mut expected: Vec<String> = counts.keys().cloned().collect();
        expected.push("poll".to_owned());
        expected.sort();
        assert_eq!(names(&routine), expected);
        // The groups of a fan-out cover every listed queue exactly once, in both kinds of run.
        for listing in [Listing::Sweep, Listing::Configured(shards)] {
            for of in [1u16, 2, 3, 4, 64] {
                let covered: Vec<QueueName> = (0..of)
                    .flat_map(|i| ShardGroup::new(i, of).unwrap().queues(listing))
                    .collect();
                assert_eq!(names(&covered), names(&ShardGroup::ALL.queues(listing)));
                assert_eq!(covered.len(), ShardGroup::ALL.queues(listing).len());
            }
        }
        assert!(ShardGroup::new(2, 2).is_none() && ShardGroup::new(0, 0).is_none());
        let one = PollShards::new(1).unwrap();
        assert_eq!(
            one.queue_for(&IssuanceId::derive("pk_a", "k")).as_str(),
            "poll-00"
        );
        assert!(PollShards::new(0).is_none() && PollShards::new(MAX_POLL_SHARDS + 1).is_none());
    }

    #[test]
    fn a_run_sweeps_every_shard_only_in_the_first_minute_of_each_sweep_window() {
        let shards = PollShards::new(8).unwrap();
        let every = SweepEvery::new(10).unwrap();
        // 2026-12-07T04:00:00Z, a multiple of ten minutes since the epoch.
        let window = Timestamp::from_secs(1_796_616_000);
        let at =
            |secs: u64| every.listing(shards, window.plus(std::time::Duration::from_secs(secs)));
        assert_eq!(at(0), Listing::Sweep);
        assert_eq!(at(59), Listing::Sweep);
        assert_eq!(at(60), Listing::Configured(shards));
        assert_eq!(at(599), Listing::Configured(shards));
        assert_eq!(at(600), Listing::Sweep);
        // A run a minute over an hour: one in ten sweeps.
        let sweeps = (0..60).filter(|m| at(m * 60 + 30).is_sweep()).count();
        assert_eq!(sweeps, 6);
        // One minute: every run sweeps.
        let always = SweepEvery::new(1).unwrap();
        assert!((0..60).all(|m| {
            always
                .listing(shards, window.plus(std::time::Duration::from_secs(m * 61)))
                .is_sweep()
        }));
        assert_eq!(Listing::Configured(shards).shards(), 8);
        assert_eq!(Listing::Sweep.shards(), MAX_POLL_SHARDS);
        assert!(SweepEvery::new(0).is_none() && SweepEvery::new(MAX_SWEEP_MINUTES + 1).is_none());
        assert_eq!(SweepEvery::default().minutes(), DEFAULT_SWEEP_MINUTES);
    }
}
