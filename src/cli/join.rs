//! The offline byte join behind `quill parse --haproxy-config`: every file on the command line
//! merged in log-time order through one [`ByteJoin`], each line printed as GELF in input order,
//! HAProxy entries with `_bytes_sent` and `_bytes_sent_basis`.
//!
//! Reads the files named on the command line (stdin if none); writes GELF lines to stdout and a
//! summary to stderr.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

use crate::accounting::join::{ByteJoin, JoinItem, Released};
use crate::accounting::stream::{append_correction, classify};
use crate::accounting::{Basis, HeaderModel};
use crate::lines::{BoundedLines, Overlong};
use crate::parse::Parser;
use crate::parse::haproxy::config::HaproxyConfig;
use crate::record::Origin;

use super::parse::{MAX_LINE, ParseArgs, line_record, parser_for};

/// A line of the offline join: its output position, its GELF, its input and raw log time.
struct Pending {
    seq: u64,
    gelf: Vec<u8>,
    input: usize,
    ts: i64,
}

/// Per-input clock offsets of the offline join, learned from pairs (a HAProxy entry and its
/// backend line are the same request, so their log times name the same moment).
struct InputClocks {
    /// Milliseconds added to an input's log times; `None` until learned.
    offset: Vec<Option<i64>>,
}

impl InputClocks {
    fn new(n: usize) -> InputClocks {
        InputClocks {
            offset: vec![None; n],
        }
    }
    /// Input `i`'s time `ts` on the common clock (its own until learned).
    fn aligned(&self, i: usize, ts: i64) -> i64 {
        ts.saturating_add(self.offset[i].unwrap_or(0))
    }
    /// Whether a pair was seen (log-time windows mean something from then on).
    fn any_pair_seen(&self) -> bool {
        self.offset.iter().any(Option::is_some)
    }
    /// Learns from a pair: HAProxy entry (input, log time), backend line (input, log time).
    fn learn(&mut self, (a, ta): (usize, i64), (b, tb): (usize, i64)) {
        if a == b {
            self.offset[a].get_or_insert(0);
            return;
        }
        match (self.offset[a], self.offset[b]) {
            (None, None) => {
                self.offset[a] = Some(0);
                self.offset[b] = Some(ta.saturating_sub(tb));
            }
            (Some(oa), None) => self.offset[b] = Some(oa.saturating_add(ta - tb)),
            (None, Some(ob)) => self.offset[a] = Some(ob.saturating_add(tb - ta)),
            (Some(_), Some(_)) => {}
        }
    }
}

/// One input of the offline join, with its next line already parsed.
struct Input {
    parser: Parser,
    origin: Arc<Origin>,
    lines: BoundedLines<BufReader<Box<dyn Read>>>,
    head: Option<Head>,
    last_ts: i64,
}

struct Head {
    gelf: Vec<u8>,
    item: JoinItem,
    key: Option<String>,
    ts: i64,
    error: bool,
}

impl Input {
    fn advance(&mut self) -> anyhow::Result<()> {
        self.head = None;
        let Some(line) = self.lines.next_line()? else {
            return Ok(());
        };
        let record = line_record(&self.origin, &line);
        let mut gelf = Vec::with_capacity(512);
        let error = crate::gelf::encode_parsed(&self.parser, &record, &mut gelf).is_error();
        let classified = classify(&self.parser, &record);
        let (item, key, ts) = (classified.item, classified.key, classified.log_time_ms);
        let ts = ts.unwrap_or(self.last_ts);
        self.last_ts = ts;
        self.head = Some(Head {
            gelf,
            item,
            key,
            ts,
            error,
        });
        Ok(())
    }
}

/// Runs `quill parse --haproxy-config …`; returns the exit status (as `quill parse`'s).
pub fn run(args: &ParseArgs) -> anyhow::Result<i32> {
    let cfg_path = args
        .keys
        .haproxy_config
        .as_ref()
        .context("--haproxy-config is required for the byte join")?;
    let text = std::fs::read_to_string(cfg_path)
        .with_context(|| format!("reading {}", cfg_path.display()))?;
    let hcfg = HaproxyConfig::parse(&text).with_context(|| format!("in {}", cfg_path.display()))?;
    let mut model = HeaderModel::from_config(&hcfg);
    model.assume_clients_keep_alive = args.assume_keep_alive_clients;
    let mut join: ByteJoin<Pending> = ByteJoin::new(
        model,
        i64::from(args.join_window) * 1000,
        args.join_capacity,
    );
    let host = args
        .host
        .clone()
        .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
    let mut inputs = Vec::new();
    let paths: Vec<Option<&PathBuf>> = if args.files.is_empty() {
        vec![None]
    } else {
        args.files.iter().map(Some).collect()
    };
    for p in paths {
        let parser = parser_for(args, p.map(PathBuf::as_path))?;
        let source = p.map_or_else(|| "stdin".to_owned(), |p| p.display().to_string());
        let reader: Box<dyn Read> = match p {
            Some(p) => Box::new(
                std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
            ),
            None => Box::new(std::io::stdin()),
        };
        let mut input = Input {
            parser,
            origin: Origin::new(&source, "parse", args.format, &host),
            lines: BoundedLines::new(
                BufReader::with_capacity(1 << 16, reader),
                MAX_LINE,
                Overlong::Split,
            ),
            head: None,
            last_ts: 0,
        };
        input.advance()?;
        inputs.push(input);
    }
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let (mut total, mut errors) = (0u64, 0u64);
    let mut counts = [0u64; 4];
    // The inputs' clocks (or zones) may disagree: pairing is by txn id, and log times only
    // order the merge and end the wait. Each input's offset to the others is learned from the
    // first pair it takes part in; until an input has one, its entries wait for their partner
    // bounded only by the join's capacity (never by a log-time window its partner's clock
    // would not share).
    let mut clock = InputClocks::new(inputs.len());
    // Lines go out in input order: released entries wait in `reorder` until every earlier
    // line is out. If that buffer outgrows the join's capacity, the join is drained (the
    // waiting entries go out with their best estimate) so memory stays bounded.
    let mut reorder: std::collections::BTreeMap<u64, Vec<u8>> = std::collections::BTreeMap::new();
    let mut next_out = 0u64;
    let mut emit = |released: Vec<Released<Pending>>,
                    clock: &mut InputClocks,
                    reorder: &mut std::collections::BTreeMap<u64, Vec<u8>>,
                    next_out: &mut u64,
                    out: &mut BufWriter<_>|
     -> anyhow::Result<()> {
        let mut pair_head: Option<(usize, i64)> = None;
        for r in released {
            let Pending {
                seq,
                mut gelf,
                input,
                ts,
            } = r.payload;
            if r.paired {
                match pair_head.take() {
                    None => pair_head = Some((input, ts)),
                    Some(hap) => clock.learn(hap, (input, ts)),
                }
            }
            if let Some(c) = r.correction {
                counts[c.basis as usize] += 1;
            }
            append_correction(&mut gelf, r.correction);
            gelf.push(b'\n');
            reorder.insert(seq, gelf);
        }
        while let Some(g) = reorder.remove(next_out) {
            out.write_all(&g)?;
            *next_out += 1;
        }
        Ok(())
    };
    let mut seq = 0u64;
    loop {
        let next = inputs
            .iter()
            .enumerate()
            .filter_map(|(i, inp)| inp.head.as_ref().map(|h| (clock.aligned(i, h.ts), i)))
            .min();
        let Some((now, i)) = next else { break };
        let Some(head) = inputs[i].head.take() else {
            break;
        };
        total += 1;
        errors += u64::from(head.error);
        let raw_ts = head.ts;
        let pending = Pending {
            seq,
            gelf: head.gelf,
            input: i,
            ts: raw_ts,
        };
        let released = join.push(head.key.as_deref(), head.item, pending, now);
        seq += 1;
        emit(released, &mut clock, &mut reorder, &mut next_out, &mut out)?;
        if clock.any_pair_seen() {
            // The line's time on the common clock, with what this line's pair just taught.
            let now = clock.aligned(i, raw_ts);
            emit(
                join.poll_expired(now),
                &mut clock,
                &mut reorder,
                &mut next_out,
                &mut out,
            )?;
        }
        if reorder.len() > args.join_capacity {
            emit(
                join.drain(),
                &mut clock,
                &mut reorder,
                &mut next_out,
                &mut out,
            )?;
        }
        inputs[i].advance()?;
    }
    emit(
        join.drain(),
        &mut clock,
        &mut reorder,
        &mut next_out,
        &mut out,
    )?;
    out.flush()?;
    eprintln!(
        "quill parse: {total} lines, {errors} parse errors; bytes_sent basis: {} exact, {} estimate, {} lower_bound, {} unknown",
        counts[Basis::Exact as usize],
        counts[Basis::Estimate as usize],
        counts[Basis::LowerBound as usize],
        counts[Basis::Unknown as usize]
    );
    Ok(if errors > 0 { 1 } else { 0 })
}
