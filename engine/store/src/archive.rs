//! Final history outside sled: append-only segment files of compressed chunks.
//!
//! sled keeps the live state (open orders, recent fills, the checkpoint, the
//! trading state). Once the account checkpoint covers them, fills and the
//! final orders they belong to move here, so sled's size, memory and open time
//! stay those of the live state whatever the history.
//!
//! Layout: `history/NNNNNNNN.seg`, each a run of chunks. A chunk is a fixed
//! header (magic, sizes, the fill sequence and venue-time range it holds, a
//! checksum of the payload and one of the header) followed by its payload,
//! deflate-compressed records; each record has its own length and checksum.
//! A chunk is written and fsynced before sled records the new end of the
//! archive ([`ArchiveMark`]); whatever lies past the recorded end (a chunk a
//! crash interrupted before sled knew of it) is cut off when the engine opens
//! the store, and ignored by readers.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};

use keel_core::error::StoreError;
use keel_core::fill::Fill;
use keel_core::order::Order;
use keel_core::store::StoreResult;

/// A new segment file is started once the current one reaches this size.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Records per chunk, at most. deflate looks back 32 KiB, so bigger chunks
/// would compress no better; a reader holds one decoded chunk at a time.
pub const CHUNK_RECORDS: usize = 512;

const MAGIC: &[u8; 4] = b"KCH1";
const HEADER_BYTES: usize = 4 + 4 + 4 + 8 + 8 + 8 + 8 + 4 + 4;
const KIND_FILL: u8 = 1;
const KIND_ORDER: u8 = 2;

/// How far the archive goes, as recorded in sled when a chunk is committed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveMark {
    /// The segment file the archive ends in (0: nothing archived yet).
    pub segment: u32,
    /// Byte length of that segment that is committed.
    pub end: u64,
    /// Every fill with a store sequence up to this one is archived.
    pub fill_cut: u64,
    /// The latest venue time of an archived fill: a fill reported later than
    /// this cannot be one the archive holds (the same trade keeps its time).
    pub max_ts_ms: i64,
    /// Fills archived.
    pub fills: u64,
    /// Orders archived.
    pub orders: u64,
}

/// What one chunk holds, read from its header.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    segment: u32,
    /// Offset of the header in the segment.
    offset: u64,
    payload_len: u32,
    first_seq: u64,
    last_seq: u64,
    min_ts: i64,
    max_ts: i64,
    payload_crc: u32,
}

/// A record as stored in a chunk.
#[derive(Debug)]
enum Record {
    /// A fill with its store sequence.
    Fill(u64, Fill),
    /// A final order.
    Order(Order),
}

/// A record encoded for a chunk: a fill's sequence and venue time, its kind, its body.
struct Encoded {
    fill: Option<(u64, i64)>,
    kind: u8,
    body: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct FillRecord {
    seq: u64,
    fill: Fill,
}

/// The segment files of one store.
pub struct Archive {
    dir: PathBuf,
    state: Mutex<State>,
}

struct State {
    mark: ArchiveMark,
    chunks: Vec<Chunk>,
}

impl Archive {
    /// Opens the archive in `dir` as far as `mark` says it is committed.
    /// `writable`: cut off what lies beyond the mark (the engine opening its
    /// store); a reader leaves the files alone. A committed chunk that is
    /// missing or damaged is an error: the history would be incomplete.
    pub fn open(dir: &Path, mark: ArchiveMark, writable: bool) -> StoreResult<Self> {
        let mut chunks = Vec::new();
        for segment in 1..=mark.segment {
            let path = segment_path(dir, segment);
            let mut file = File::open(&path).map_err(|e| corrupt(&path, format!("cannot open: {e}")))?;
            let len = file.metadata().map_err(io)?.len();
            let committed = if segment == mark.segment { mark.end } else { len };
            if len < committed {
                return Err(corrupt(&path, format!("holds {len} bytes, the store recorded {committed}")));
            }
            let mut offset = 0;
            while offset < committed {
                let chunk = read_header(&mut file, segment, offset).map_err(|reason| corrupt(&path, reason))?;
                offset += HEADER_BYTES as u64 + u64::from(chunk.payload_len);
                chunks.push(chunk);
            }
            if offset != committed {
                return Err(corrupt(&path, format!("chunks end at {offset}, the store recorded {committed}")));
            }
        }
        if writable {
            cut_uncommitted(dir, &mark)?;
        }
        Ok(Self { dir: dir.to_path_buf(), state: Mutex::new(State { mark, chunks }) })
    }

    /// How far the archive goes.
    pub fn mark(&self) -> ArchiveMark {
        self.lock().map(|s| s.mark).unwrap_or_default()
    }

    /// Appends fills and orders (in chunks of at most [`CHUNK_RECORDS`]) and
    /// makes them durable; returns the mark to record in sled, after which
    /// [`Archive::commit`] makes them visible. Writes at the committed end, so
    /// chunks written before a failed commit are replaced.
    pub fn append(&self, fills: &[(u64, Fill)], orders: &[Order]) -> StoreResult<(ArchiveMark, PendingChunks)> {
        let mut mark = self.mark();
        let mut records: Vec<Encoded> = Vec::with_capacity(fills.len() + orders.len());
        for (seq, fill) in fills {
            let body = to_json(&FillRecord { seq: *seq, fill: fill.clone() })?;
            records.push(Encoded { fill: Some((*seq, fill.ts_ms)), kind: KIND_FILL, body });
        }
        for order in orders {
            records.push(Encoded { fill: None, kind: KIND_ORDER, body: to_json(order)? });
        }
        crate::private_dir(&self.dir).map_err(io)?;
        let mut written = Vec::new();
        let mut file: Option<(u32, File)> = None;
        for group in records.chunks(CHUNK_RECORDS) {
            let mut raw = Vec::new();
            for r in group {
                push_record(&mut raw, r.kind, &r.body);
            }
            let mut enc = DeflateEncoder::new(Vec::with_capacity(raw.len() / 4), Compression::default());
            enc.write_all(&raw).map_err(io)?;
            let payload = enc.finish().map_err(io)?;
            let payload_len =
                u32::try_from(payload.len()).map_err(|_| StoreError::Encode("archive chunk too large".into()))?;
            let (segment, offset) = if mark.segment == 0 || mark.end >= SEGMENT_BYTES {
                (mark.segment + 1, 0)
            } else {
                (mark.segment, mark.end)
            };
            let fill_keys: Vec<(u64, i64)> = group.iter().filter_map(|r| r.fill).collect();
            let chunk = Chunk {
                segment,
                offset,
                payload_len,
                first_seq: fill_keys.first().map(|k| k.0).unwrap_or(0),
                last_seq: fill_keys.last().map(|k| k.0).unwrap_or(0),
                min_ts: fill_keys.iter().map(|k| k.1).min().unwrap_or(0),
                max_ts: fill_keys.iter().map(|k| k.1).max().unwrap_or(0),
                payload_crc: crc32fast::hash(&payload),
            };
            if file.as_ref().map(|f| f.0) != Some(segment) {
                if let Some((_, done)) = file.take() {
                    done.sync_all().map_err(io)?;
                }
                let path = segment_path(&self.dir, segment);
                let mut options = OpenOptions::new();
                options.create(true).write(true).truncate(false);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let f = options.open(&path).map_err(io)?;
                // Whatever lies past the committed end was never recorded.
                f.set_len(offset).map_err(io)?;
                if offset == 0 {
                    // A new file: its directory entry must survive a crash too.
                    File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io)?;
                }
                file = Some((segment, f));
            }
            if let Some((_, f)) = file.as_mut() {
                f.seek(SeekFrom::Start(offset)).map_err(io)?;
                f.write_all(&encode_header(&chunk, group.len())).map_err(io)?;
                f.write_all(&payload).map_err(io)?;
            }
            mark = ArchiveMark {
                segment,
                end: offset + HEADER_BYTES as u64 + u64::from(payload_len),
                fill_cut: if chunk.last_seq > 0 { chunk.last_seq } else { mark.fill_cut },
                max_ts_ms: if chunk.last_seq > 0 { mark.max_ts_ms.max(chunk.max_ts) } else { mark.max_ts_ms },
                fills: mark.fills + fill_keys.len() as u64,
                orders: mark.orders + (group.len() - fill_keys.len()) as u64,
            };
            written.push(chunk);
        }
        if let Some((_, f)) = file {
            f.sync_all().map_err(io)?;
        }
        Ok((mark, PendingChunks(written)))
    }

    /// Makes an appended chunk visible once sled has recorded its mark.
    pub fn commit(&self, mark: ArchiveMark, chunks: PendingChunks) {
        if let Ok(mut s) = self.lock() {
            s.mark = mark;
            s.chunks.extend(chunks.0);
        }
    }

    /// Archived fills with a sequence above `seq`, in sequence order.
    pub fn fills_after(&self, seq: u64) -> StoreResult<Vec<(u64, Fill)>> {
        let chunks: Vec<Chunk> = self.lock()?.chunks.iter().filter(|c| c.last_seq > seq).copied().collect();
        let mut out = Vec::new();
        for chunk in chunks {
            for record in self.read_chunk(&chunk)? {
                if let Record::Fill(s, fill) = record {
                    if s > seq {
                        out.push((s, fill));
                    }
                }
            }
        }
        Ok(out)
    }

    /// The last `limit` archived fills, oldest first.
    pub fn recent_fills(&self, limit: usize) -> StoreResult<Vec<(u64, Fill)>> {
        let chunks: Vec<Chunk> = self.lock()?.chunks.clone();
        let mut out: Vec<(u64, Fill)> = Vec::new();
        for chunk in chunks.iter().rev().filter(|c| c.last_seq > 0) {
            if out.len() >= limit {
                break;
            }
            let mut fills: Vec<(u64, Fill)> = self
                .read_chunk(chunk)?
                .into_iter()
                .filter_map(|r| match r {
                    Record::Fill(s, f) => Some((s, f)),
                    Record::Order(_) => None,
                })
                .collect();
            fills.append(&mut out);
            out = fills;
        }
        let skip = out.len().saturating_sub(limit);
        Ok(out.split_off(skip))
    }

    /// Every archived order.
    pub fn orders(&self) -> StoreResult<Vec<Order>> {
        let chunks: Vec<Chunk> = self.lock()?.chunks.clone();
        let mut out = Vec::new();
        for chunk in &chunks {
            for record in self.read_chunk(chunk)? {
                if let Record::Order(o) = record {
                    out.push(o);
                }
            }
        }
        Ok(out)
    }

    /// True if the archive holds this venue trade. Only chunks whose time
    /// range covers the fill's venue time are read.
    pub fn contains(&self, fill: &Fill) -> StoreResult<bool> {
        let chunks: Vec<Chunk> = {
            let s = self.lock()?;
            if fill.ts_ms > s.mark.max_ts_ms {
                return Ok(false);
            }
            s.chunks
                .iter()
                .filter(|c| c.last_seq > 0 && c.min_ts <= fill.ts_ms && fill.ts_ms <= c.max_ts)
                .copied()
                .collect()
        };
        for chunk in chunks {
            for record in self.read_chunk(&chunk)? {
                if let Record::Fill(_, f) = record {
                    if f.trade_id == fill.trade_id && f.symbol == fill.symbol {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    /// Bytes the archive takes on disk.
    pub fn bytes(&self) -> u64 {
        let mark = self.mark();
        (1..=mark.segment)
            .map(|s| if s == mark.segment { mark.end } else { file_len(&segment_path(&self.dir, s)) })
            .sum()
    }

    fn read_chunk(&self, chunk: &Chunk) -> StoreResult<Vec<Record>> {
        let path = segment_path(&self.dir, chunk.segment);
        let damaged = |reason: String| corrupt(&path, format!("chunk at {}: {reason}", chunk.offset));
        let mut file = File::open(&path).map_err(|e| damaged(format!("cannot open: {e}")))?;
        file.seek(SeekFrom::Start(chunk.offset + HEADER_BYTES as u64)).map_err(io)?;
        let mut payload = vec![0u8; chunk.payload_len as usize];
        file.read_exact(&mut payload).map_err(|e| damaged(format!("cannot read: {e}")))?;
        if crc32fast::hash(&payload) != chunk.payload_crc {
            return Err(damaged("checksum mismatch".into()));
        }
        let mut raw = Vec::new();
        DeflateDecoder::new(&payload[..]).read_to_end(&mut raw).map_err(|e| damaged(format!("cannot inflate: {e}")))?;
        parse_records(&raw).map_err(damaged)
    }

    fn lock(&self) -> StoreResult<std::sync::MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| StoreError::Encode("archive index lock poisoned".into()))
    }
}

/// Chunks written and fsynced but not yet recorded in sled.
#[derive(Debug)]
pub struct PendingChunks(Vec<Chunk>);

fn segment_path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("{segment:08}.seg"))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Removes what a crash left past the committed end: the tail of the last
/// segment and any later segment file.
fn cut_uncommitted(dir: &Path, mark: &ArchiveMark) -> StoreResult<()> {
    if mark.segment > 0 {
        let path = segment_path(dir, mark.segment);
        if file_len(&path) > mark.end {
            let file = OpenOptions::new().write(true).open(&path).map_err(io)?;
            file.set_len(mark.end).map_err(io)?;
            file.sync_all().map_err(io)?;
            tracing::warn!(segment = %path.display(), end = mark.end, "archive: cut a chunk a crash left unrecorded");
        }
    }
    let mut next = mark.segment + 1;
    while segment_path(dir, next).exists() {
        std::fs::remove_file(segment_path(dir, next)).map_err(io)?;
        next += 1;
    }
    Ok(())
}

fn encode_header(c: &Chunk, records: usize) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_BYTES);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&c.payload_len.to_le_bytes());
    h.extend_from_slice(&(records as u32).to_le_bytes());
    h.extend_from_slice(&c.first_seq.to_le_bytes());
    h.extend_from_slice(&c.last_seq.to_le_bytes());
    h.extend_from_slice(&c.min_ts.to_le_bytes());
    h.extend_from_slice(&c.max_ts.to_le_bytes());
    h.extend_from_slice(&c.payload_crc.to_le_bytes());
    let crc = crc32fast::hash(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

fn read_header(file: &mut File, segment: u32, offset: u64) -> Result<Chunk, String> {
    let mut h = [0u8; HEADER_BYTES];
    file.seek(SeekFrom::Start(offset)).map_err(|e| e.to_string())?;
    file.read_exact(&mut h).map_err(|e| format!("chunk header at {offset}: {e}"))?;
    if &h[0..4] != MAGIC {
        return Err(format!("no chunk at {offset}"));
    }
    let body = HEADER_BYTES - 4;
    if crc32fast::hash(&h[..body]) != le_u32(&h[body..]) {
        return Err(format!("chunk header at {offset}: checksum mismatch"));
    }
    Ok(Chunk {
        segment,
        offset,
        payload_len: le_u32(&h[4..8]),
        first_seq: le_u64(&h[12..20]),
        last_seq: le_u64(&h[20..28]),
        min_ts: le_u64(&h[28..36]) as i64,
        max_ts: le_u64(&h[36..44]) as i64,
        payload_crc: le_u32(&h[44..48]),
    })
}

fn to_json<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Encode(e.to_string()))
}

/// A record: length (u32), checksum of kind and body (u32), kind (u8), body (JSON).
fn push_record(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[kind]);
    hasher.update(body);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.push(kind);
    out.extend_from_slice(body);
}

fn parse_records(raw: &[u8]) -> Result<Vec<Record>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < raw.len() {
        let head = raw.get(at..at + 9).ok_or_else(|| format!("record at {at}: truncated"))?;
        let len = le_u32(&head[0..4]) as usize;
        let crc = le_u32(&head[4..8]);
        let kind = head[8];
        let body = raw.get(at + 9..at + 9 + len).ok_or_else(|| format!("record at {at}: truncated"))?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&[kind]);
        hasher.update(body);
        if hasher.finalize() != crc {
            return Err(format!("record at {at}: checksum mismatch"));
        }
        out.push(match kind {
            KIND_FILL => {
                let r: FillRecord = serde_json::from_slice(body).map_err(|e| format!("fill record at {at}: {e}"))?;
                Record::Fill(r.seq, r.fill)
            }
            KIND_ORDER => {
                Record::Order(serde_json::from_slice(body).map_err(|e| format!("order record at {at}: {e}"))?)
            }
            other => return Err(format!("record at {at}: unknown kind {other}")),
        });
        at += 9 + len;
    }
    Ok(out)
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

fn corrupt(path: &Path, reason: String) -> StoreError {
    StoreError::Corrupt { tree: "archive", key: path.display().to_string(), reason }
}
