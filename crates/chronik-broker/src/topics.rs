//! Topics: names, ids, configs and their partition logs, with the topic list persisted as JSON
//! under the data directory (rewritten atomically on every change) and recovered on restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::log::{Fsync, PartitionLog};
use super::topic_config;

/// Longest legal topic name.
const MAX_TOPIC_NAME: usize = 249;
/// Most topics this broker holds (auto-creation and CreateTopics stop there).
pub const MAX_TOPICS: usize = 10_000;
/// Most partitions over all topics.
pub const MAX_PARTITIONS: i64 = 100_000;

/// A partition: its log behind a short mutex (never held across an await).
pub type Partition = Arc<Mutex<PartitionLog>>;

/// One topic.
#[derive(Debug)]
pub struct Topic {
    /// Topic name.
    pub name: String,
    /// Topic id (Metadata v10+, Fetch v13+, DeleteTopics v6+).
    pub id: Uuid,
    /// Configs set at creation or by AlterConfigs (others take the defaults of
    /// [`topic_config::DEFS`]).
    configs: RwLock<BTreeMap<String, String>>,
    /// Partition logs, index = partition number.
    pub partitions: RwLock<Vec<Partition>>,
}

impl Topic {
    /// A config value, the override or Kafka's default.
    pub fn config(&self, key: &str) -> Option<String> {
        topic_config::value_of(&self.configs(), key)
    }

    /// The configs set on this topic (without defaults).
    pub fn configs(&self) -> BTreeMap<String, String> {
        self.configs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether batches get the broker's time.
    pub fn log_append_time(&self) -> bool {
        self.config("message.timestamp.type").as_deref() == Some("LogAppendTime")
    }

    /// Partition `index`, if it exists.
    pub fn partition(&self, index: i32) -> Option<Partition> {
        let parts = self.partitions.read().unwrap_or_else(|e| e.into_inner());
        usize::try_from(index)
            .ok()
            .and_then(|i| parts.get(i).cloned())
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> i32 {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len() as i32
    }

    /// The name as kafka-protocol wants it.
    pub fn wire_name(&self) -> kafka_protocol::messages::TopicName {
        kafka_protocol::messages::TopicName(StrBytes::from_string(self.name.clone()))
    }
}

/// One topic as `topics.json` in the data directory keeps it.
#[derive(Debug, Serialize, Deserialize)]
struct TopicRecord {
    name: String,
    id: String,
    partitions: i32,
    configs: BTreeMap<String, String>,
}

/// All topics.
pub struct Topics {
    data_dir: Option<PathBuf>,
    /// When partition logs flush their segment files.
    fsync: Fsync,
    map: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises changes to the topic list (and its file).
    change: Mutex<()>,
}

/// Sets a log's segment limits from a topic's configs, and the broker's fsync policy.
fn configure(log: &mut PartitionLog, configs: &BTreeMap<String, String>, fsync: Fsync) {
    let (bytes, ms) = topic_config::segment_limits(configs);
    log.set_segment_limits(bytes, ms);
    log.set_fsync(fsync);
}

/// Why a topic name is not legal, if it is not.
pub fn invalid_topic_name(name: &str) -> Option<String> {
    if name.is_empty() || name == "." || name == ".." {
        return Some(format!("{name:?} is not a legal topic name"));
    }
    if name.len() > MAX_TOPIC_NAME {
        return Some(format!(
            "topic name longer than {MAX_TOPIC_NAME} characters"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return Some(format!(
            "{name:?} contains characters other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    None
}

/// A random (version 4 layout) topic id, from the standard library's per-process random hash
/// keys and the clock.
fn random_uuid() -> Uuid {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(chronik_capture::now_micros());
    let a = h.finish();
    let mut h2 = std::collections::hash_map::RandomState::new().build_hasher();
    h2.write_u64(a);
    let b = h2.finish();
    // Version 4 / variant bits so it looks like any other random UUID.
    let v = ((a as u128) << 64 | b as u128) & !(0xf000u128 << 64) & !(0xc000u128 << 48);
    Uuid::from_u128(v | (0x4000u128 << 64) | (0x8000u128 << 48))
}

impl Topics {
    /// Loads the topics (and their partition logs) from the data directory, or starts empty;
    /// logs flush as `fsync` says.
    pub fn open(data_dir: Option<&Path>, fsync: Fsync) -> anyhow::Result<Topics> {
        let topics = Topics {
            data_dir: data_dir.map(Path::to_path_buf),
            fsync,
            map: RwLock::new(BTreeMap::new()),
            change: Mutex::new(()),
        };
        let Some(dir) = data_dir else {
            return Ok(topics);
        };
        std::fs::create_dir_all(dir.join("logs"))?;
        let list = dir.join("topics.json");
        if !list.exists() {
            return Ok(topics);
        }
        let records: Vec<TopicRecord> = serde_json::from_slice(&std::fs::read(&list)?)?;
        let mut map = BTreeMap::new();
        for r in records {
            let id = Uuid::parse_str(&r.id)?;
            let mut parts = Vec::new();
            let (segment_bytes, _) = topic_config::segment_limits(&r.configs);
            for p in 0..r.partitions.max(0) {
                let path = topics.partition_dir(id, p).unwrap_or_default();
                let (mut log, rec) = PartitionLog::open_dir(&path, segment_bytes)?;
                configure(&mut log, &r.configs, fsync);
                if rec.truncated_bytes > 0 {
                    tracing::warn!(topic = %r.name, partition = p, cut = rec.truncated_bytes,
                        "cut a torn or corrupt tail from the segment file");
                }
                tracing::info!(topic = %r.name, partition = p, entries = rec.entries, "recovered partition");
                parts.push(Arc::new(Mutex::new(log)));
            }
            map.insert(
                r.name.clone(),
                Arc::new(Topic {
                    name: r.name,
                    id,
                    configs: RwLock::new(r.configs),
                    partitions: RwLock::new(parts),
                }),
            );
        }
        *topics.map.write().unwrap_or_else(|e| e.into_inner()) = map;
        Ok(topics)
    }

    /// Where a partition's segment files live (`logs/<topic id>-<partition>`), with a data
    /// directory.
    fn partition_dir(&self, id: Uuid, partition: i32) -> Option<PathBuf> {
        self.data_dir
            .as_ref()
            .map(|d| d.join("logs").join(format!("{}-{partition}", id.simple())))
    }

    /// A partition's log: opened (and recovered) from its directory, or in memory.
    fn new_partition(
        &self,
        id: Uuid,
        partition: i32,
        configs: &BTreeMap<String, String>,
    ) -> anyhow::Result<Partition> {
        let mut log = match self.partition_dir(id, partition) {
            Some(dir) => PartitionLog::open_dir(&dir, topic_config::segment_limits(configs).0)?.0,
            None => PartitionLog::in_memory(),
        };
        configure(&mut log, configs, self.fsync);
        Ok(Arc::new(Mutex::new(log)))
    }

    /// Rewrites `topics.json` (a temporary file renamed over it, both flushed unless `--fsync
    /// never`); nothing without a data directory.
    fn persist(&self) -> anyhow::Result<()> {
        let Some(dir) = &self.data_dir else {
            return Ok(());
        };
        let records: Vec<TopicRecord> = self
            .all()
            .iter()
            .map(|t| TopicRecord {
                name: t.name.clone(),
                id: t.id.to_string(),
                partitions: t.partition_count(),
                configs: t.configs(),
            })
            .collect();
        let tmp = dir.join("topics.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&records)?)?;
        if self.fsync != Fsync::Never {
            std::fs::File::open(&tmp)?.sync_all()?;
        }
        std::fs::rename(&tmp, dir.join("topics.json"))?;
        if self.fsync != Fsync::Never {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// A topic by name.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// A topic by id.
    pub fn by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .find(|t| t.id == id)
            .cloned()
    }

    /// Every topic, by name.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Whether `topics` more topics with `partitions` more partitions in all fit under the
    /// broker's caps; the reason when not.
    pub fn room_for(&self, topics: usize, partitions: i64) -> Result<(), String> {
        let all = self.all();
        if all.len() + topics > MAX_TOPICS {
            return Err(format!("this broker holds at most {MAX_TOPICS} topics"));
        }
        let held: i64 = all.iter().map(|t| t.partition_count() as i64).sum();
        if held + partitions > MAX_PARTITIONS {
            return Err(format!(
                "this broker holds at most {MAX_PARTITIONS} partitions ({held} exist)"
            ));
        }
        Ok(())
    }

    /// Creates a topic; `Ok(Err(existing))` when one by that name exists. Fails beyond the
    /// broker's caps on topics and partitions.
    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> anyhow::Result<Result<Arc<Topic>, Arc<Topic>>> {
        let _g = self.change.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = self.get(name) {
            return Ok(Err(t));
        }
        self.room_for(1, partitions.max(1) as i64)
            .map_err(anyhow::Error::msg)?;
        let id = random_uuid();
        let mut parts = Vec::new();
        for p in 0..partitions.max(1) {
            parts.push(self.new_partition(id, p, &configs)?);
        }
        let topic = Arc::new(Topic {
            name: name.to_string(),
            id,
            configs: RwLock::new(configs),
            partitions: RwLock::new(parts),
        });
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), topic.clone());
        self.persist()?;
        tracing::info!(topic = name, partitions, "created topic");
        Ok(Ok(topic))
    }

    /// Grows a topic to `count` partitions.
    pub fn add_partitions(&self, topic: &Topic, count: i32) -> anyhow::Result<()> {
        let _g = self.change.lock().unwrap_or_else(|e| e.into_inner());
        let current = topic.partition_count();
        self.room_for(0, (count - current).max(0) as i64)
            .map_err(anyhow::Error::msg)?;
        let mut new = Vec::new();
        for p in current..count {
            new.push(self.new_partition(topic.id, p, &topic.configs())?);
        }
        topic
            .partitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(new);
        self.persist()
    }

    /// Replaces a topic's configs (AlterConfigs semantics) and persists them; the partition
    /// logs take the new segment limits at once (retention and the others are read when used).
    pub fn set_configs(
        &self,
        topic: &Topic,
        configs: BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let _g = self.change.lock().unwrap_or_else(|e| e.into_inner());
        for p in topic
            .partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            configure(
                &mut p.lock().unwrap_or_else(|e| e.into_inner()),
                &configs,
                self.fsync,
            );
        }
        *topic.configs.write().unwrap_or_else(|e| e.into_inner()) = configs;
        self.persist()
    }

    /// Deletes a topic and its files.
    pub fn delete(&self, name: &str) -> anyhow::Result<Option<Arc<Topic>>> {
        let _g = self.change.lock().unwrap_or_else(|e| e.into_inner());
        let removed = self
            .map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        if let Some(t) = &removed {
            self.persist()?;
            for p in 0..t.partition_count() {
                if let Some(dir) = self.partition_dir(t.id, p) {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            tracing::info!(topic = name, "deleted topic");
        }
        Ok(removed)
    }
}
