//! The due index's queues: the shard each queued issuance is in, the shard groups a fanned-out
//! poll schedule drains, and the single queue of the releases before sharding.

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

/// How the due index is spread: every queued issuance is in shard `poll-NN`, chosen from its id,
/// so that no index partition takes more than its share of the writes (a DynamoDB index
/// partition takes on the order of 1,000 writes/s). Every record moves between the queue and the
/// poller through its own shard; the poller drains every possible shard ([`Self::drained`]), not
/// only the configured ones, so that the count can be raised or lowered without stranding a
/// record in a shard nobody reads.
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

    /// Reads `POLL_SHARDS` (default 8, 1–64). The issue function and the status poller must
    /// agree only loosely: the poller drains every shard whatever the count.
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

    /// Every queue the poller drains: the legacy queue, then every possible shard.
    pub fn drained() -> Vec<QueueName> {
        std::iter::once(legacy_poll_queue())
            .chain((0..MAX_POLL_SHARDS).map(shard_queue))
            .collect()
    }
}

/// One of `of` groups of the drained queues, for a schedule that fans the poll out over several
/// invocations: group `index` drains the legacy queue (group 0 only) and the shards `k` with
/// `k % of == index`. The groups of one `of` cover every queue exactly once.
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

    /// The queues this group drains.
    pub fn queues(self) -> Vec<QueueName> {
        let legacy = (self.index == 0).then(legacy_poll_queue);
        legacy
            .into_iter()
            .chain(
                (0..MAX_POLL_SHARDS)
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
        let drained = PollShards::drained();
        assert_eq!(drained.len(), 1 + usize::from(MAX_POLL_SHARDS));
        assert_eq!(drained[0].as_str(), "poll");
        assert!(
            counts
                .keys()
                .all(|q| drained.iter().any(|d| d.as_str() == q))
        );
        // The groups of a fan-out cover every drained queue exactly once.
        for of in [1u16, 2, 3, 4, 64] {
            let mut covered: Vec<String> = (0..of)
                .flat_map(|i| ShardGroup::new(i, of).unwrap().queues())
                .map(|q| q.as_str().to_owned())
                .collect();
            covered.sort();
            let mut all: Vec<String> = drained.iter().map(|q| q.as_str().to_owned()).collect();
            all.sort();
            assert_eq!(covered, all, "{of} groups");
        }
        assert_eq!(ShardGroup::ALL.queues(), drained);
        assert!(ShardGroup::new(2, 2).is_none() && ShardGroup::new(0, 0).is_none());
        let one = PollShards::new(1).unwrap();
        assert_eq!(
            one.queue_for(&IssuanceId::derive("pk_a", "k")).as_str(),
            "poll-00"
        );
        assert!(PollShards::new(0).is_none() && PollShards::new(MAX_POLL_SHARDS + 1).is_none());
    }
}
