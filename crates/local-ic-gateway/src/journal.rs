//! Persistence: a snapshot of the whole network plus a write-ahead journal of everything that
//! changed it since. The network is deterministic, so replaying the journal over the snapshot
//! rebuilds exactly the state the server had; a record is synced before any reply that depends
//! on it leaves, so an acknowledged update survives a crash (`kill -9`) at any point.
//!
//! Files in the network's folder:
//! - `snapshot.cbor`: a [`Snapshot`] (written to a temporary file, synced, then renamed);
//! - `journal-<generation>.log`: records appended after that snapshot, each framed as
//!   `len: u32 LE`, `sha256(payload)[..4]`, `payload` (CBOR). A torn record at the end (a crash
//!   mid-write) is where replay stops: nothing after it was ever acknowledged.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candid::Principal;
use local_ic::NetworkState;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

/// An ingress message the network accepted, by request id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestEntry {
    /// The runtime's id of the message.
    pub message: u64,
    pub sender: Principal,
    pub canister: Principal,
    /// The effective canister id the request was sent to.
    pub effective: Principal,
    pub ingress_expiry: u64,
}

pub type RequestId = [u8; 32];

/// Everything the served network is: the runtime's state and the request ids it accepted.
#[derive(Deserialize)]
pub struct Snapshot {
    pub generation: u64,
    pub network: NetworkState,
    pub requests: BTreeMap<RequestId, RequestEntry>,
}

/// A [`Snapshot`] being written, borrowing the live state.
#[derive(Serialize)]
pub struct SnapshotRef<'a> {
    pub generation: u64,
    pub network: &'a NetworkState,
    pub requests: &'a BTreeMap<RequestId, RequestEntry>,
}

/// One change to the network, in the order it was applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Record {
    /// The clock moved to `time_nanos`, then one round executed.
    Round { time_nanos: u64 },
    /// The clock moved to `time_nanos`, then an ingress message was accepted.
    Submit {
        time_nanos: u64,
        request_id: RequestId,
        entry: RequestEntry,
        method: String,
        arg: ByteBuf,
    },
}

pub struct Journal {
    dir: PathBuf,
    generation: u64,
    writer: BufWriter<File>,
    /// Records written since the last sync.
    unsynced: usize,
    /// Records in the current journal file.
    pub records: usize,
}

const SNAPSHOT: &str = "snapshot.cbor";

fn journal_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("journal-{generation}.log"))
}

/// The journal records after a snapshot, and how many of the file's bytes they take (anything
/// after is a torn write).
pub struct Replay {
    pub records: Vec<Record>,
    pub valid_bytes: u64,
}

/// Reads the saved network, if the folder has one: the snapshot and the journal after it.
pub fn load(dir: &Path) -> Result<Option<(Snapshot, Replay)>> {
    let path = dir.join(SNAPSHOT);
    if !path.exists() {
        return Ok(None);
    }
    let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let snapshot: Snapshot = ciborium::from_reader(BufReader::new(file))
        .with_context(|| format!("reading {}", path.display()))?;
    let records = read_records(&journal_path(dir, snapshot.generation))?;
    Ok(Some((snapshot, records)))
}

fn read_records(path: &Path) -> Result<Replay> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut file) => {
            file.read_to_end(&mut bytes)
                .with_context(|| format!("reading {}", path.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Replay {
                records: Vec::new(),
                valid_bytes: 0,
            });
        }
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    }
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let end = at + 8 + len;
        // A frame cut short by a crash can only be the last one.
        let Some(payload) = bytes.get(at + 8..end) else {
            break;
        };
        if Sha256::digest(payload)[..4] != header[4..8] {
            if end == bytes.len() {
                break;
            }
            // Acknowledged records follow: never cut them off.
            bail!(
                "{} is corrupt at byte {at}: a record's checksum does not match and more records follow",
                path.display()
            );
        }
        let record = ciborium::from_reader::<Record, _>(payload).with_context(|| {
            format!(
                "{}: the record at byte {at} is intact but unreadable (written by another version?)",
                path.display()
            )
        })?;
        records.push(record);
        at = end;
    }
    Ok(Replay {
        records,
        valid_bytes: at as u64,
    })
}

impl Journal {
    /// Writes `snapshot` durably and starts its (empty) journal; the previous journal is
    /// removed only after the new snapshot is in place.
    pub fn checkpoint(dir: &Path, snapshot: &SnapshotRef<'_>) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join("snapshot.cbor.tmp");
        {
            let file = File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
            let mut writer = BufWriter::new(file);
            ciborium::into_writer(snapshot, &mut writer)
                .with_context(|| format!("writing {}", tmp.display()))?;
            writer.flush()?;
            writer.get_ref().sync_all()?;
        }
        let journal = journal_path(dir, snapshot.generation);
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&journal)
            .with_context(|| format!("creating {}", journal.display()))?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(SNAPSHOT))
            .with_context(|| format!("replacing {}", dir.join(SNAPSHOT).display()))?;
        File::open(dir)?.sync_all()?;
        if let Some(previous) = snapshot.generation.checked_sub(1) {
            let _ = std::fs::remove_file(journal_path(dir, previous));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            generation: snapshot.generation,
            writer: BufWriter::new(file),
            unsynced: 0,
            records: 0,
        })
    }

    /// Continues the journal of a loaded snapshot once its records are replayed: a torn tail is
    /// cut off (it was never acknowledged) and new records follow the valid ones. The valid
    /// records are never rewritten, so a crash here loses nothing.
    pub fn resume(dir: &Path, generation: u64, replay: &Replay) -> Result<Self> {
        let path = journal_path(dir, generation);
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.set_len(replay.valid_bytes)?;
        file.sync_all()?;
        let mut writer = BufWriter::new(file);
        std::io::Seek::seek(&mut writer, std::io::SeekFrom::End(0))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            generation,
            writer,
            unsynced: 0,
            records: replay.records.len(),
        })
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn append(&mut self, record: &Record) -> Result<()> {
        write_record(&mut self.writer, record)?;
        self.unsynced += 1;
        self.records += 1;
        Ok(())
    }

    /// Makes every appended record durable (one `fsync` for the whole batch).
    pub fn sync(&mut self) -> Result<()> {
        if self.unsynced == 0 {
            return Ok(());
        }
        self.writer.flush()?;
        self.writer.get_ref().sync_data()?;
        self.unsynced = 0;
        Ok(())
    }
}

fn write_record(writer: &mut impl Write, record: &Record) -> Result<()> {
    let mut payload = Vec::new();
    ciborium::into_writer(record, &mut payload).context("encoding a journal record")?;
    writer.write_all(&(payload.len() as u32).to_le_bytes())?;
    writer.write_all(&Sha256::digest(&payload)[..4])?;
    writer.write_all(&payload)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("local-ic-gateway-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn records_survive_and_a_torn_tail_is_dropped() {
        let dir = temp_dir("journal");
        let network = NetworkState::new([1; 32]);
        let requests = BTreeMap::new();
        let snapshot = SnapshotRef {
            generation: 4,
            network: &network,
            requests: &requests,
        };
        let mut journal = Journal::checkpoint(&dir, &snapshot).unwrap();
        for t in 1..=3 {
            journal.append(&Record::Round { time_nanos: t }).unwrap();
        }
        journal.sync().unwrap();
        drop(journal);
        // A crash mid-write leaves half a record.
        let path = journal_path(&dir, 4);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[40, 0, 0, 0, 1, 2]).unwrap();
        drop(file);

        let (loaded, replay) = load(&dir).unwrap().unwrap();
        assert_eq!(loaded.generation, 4);
        assert_eq!(replay.records.len(), 3);
        assert!(matches!(replay.records[2], Record::Round { time_nanos: 3 }));

        // Resuming drops the torn tail; new records follow the valid ones.
        let mut journal = Journal::resume(&dir, 4, &replay).unwrap();
        journal.append(&Record::Round { time_nanos: 9 }).unwrap();
        journal.sync().unwrap();
        let (_, replay) = load(&dir).unwrap().unwrap();
        assert_eq!(replay.records.len(), 4);
        assert!(matches!(replay.records[3], Record::Round { time_nanos: 9 }));

        // A new checkpoint starts an empty journal and removes the old one.
        let next = SnapshotRef {
            generation: 5,
            network: &loaded.network,
            requests: &loaded.requests,
        };
        Journal::checkpoint(&dir, &next).unwrap();
        let (_, replay) = load(&dir).unwrap().unwrap();
        assert!(replay.records.is_empty());
        assert!(!journal_path(&dir, 4).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_a_damaged_last_record_is_dropped() {
        let dir = temp_dir("corrupt");
        let network = NetworkState::new([1; 32]);
        let requests = BTreeMap::new();
        let snapshot = SnapshotRef {
            generation: 0,
            network: &network,
            requests: &requests,
        };
        let mut journal = Journal::checkpoint(&dir, &snapshot).unwrap();
        journal.append(&Record::Round { time_nanos: 1 }).unwrap();
        journal.append(&Record::Round { time_nanos: 2 }).unwrap();
        journal.sync().unwrap();
        let path = journal_path(&dir, 0);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let (_, replay) = load(&dir).unwrap().unwrap();
        assert_eq!(replay.records.len(), 1);

        // A damaged record with records after it is an error, not a tail to cut off.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let error = load(&dir).err().expect("a corrupt journal is refused");
        assert!(format!("{error:#}").contains("corrupt"), "{error:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
