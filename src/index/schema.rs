//! The tantivy schema of a partition, and the field handles every other index module uses.
//!
//! Field names are what `quill search --query` users type (`status:503 AND host:web1`), so they
//! are short and stable. Why each field is indexed the way it is: ARCHITECTURE.md, "Index schema".

use tantivy::schema::{
    DateOptions, DateTimePrecision, FAST, Field, IndexRecordOption, NumericOptions, STORED, Schema,
    TextFieldIndexing, TextOptions,
};

pub const TXN_ID: &str = "txn_id";
pub const TIMESTAMP: &str = "timestamp";
pub const SEQ: &str = "seq";
pub const HOST: &str = "host";
pub const CATEGORY: &str = "category";
pub const SOURCE: &str = "source";
pub const LEVEL: &str = "level";
pub const STATUS: &str = "status";
pub const METHOD: &str = "method";
pub const CLIENT_IP: &str = "client_ip";
pub const PATH: &str = "path";
pub const MESSAGE: &str = "message";
pub const GELF: &str = "gelf";

/// Handles of the schema's fields.
#[derive(Debug, Clone)]
pub struct IndexFields {
    pub schema: Schema,
    pub txn_id: Field,
    pub timestamp: Field,
    pub seq: Field,
    pub host: Field,
    pub category: Field,
    pub source: Field,
    pub level: Field,
    pub status: Field,
    pub method: Field,
    pub client_ip: Field,
    pub path: Field,
    pub message: Field,
    pub gelf: Field,
}

impl IndexFields {
    /// The schema new partitions are created with. `word_positions` keeps the positions of the
    /// full-text words (phrase queries work; indexing is slower and the index bigger).
    pub fn build(word_positions: bool) -> IndexFields {
        let mut b = Schema::builder();
        // No field keeps fieldnorms (per-document token counts): they only serve BM25 scoring,
        // and every search orders by time, never by score.
        // Exact-match keywords: one term per value, no positions, no frequencies.
        let keyword = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("raw")
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        );
        let number = NumericOptions::default().set_indexed();
        let txn_id = b.add_text_field(TXN_ID, keyword.clone());
        // A fast (columnar) field only: range queries and time ordering read the column at
        // millisecond precision; an inverted index of dates would only hold whole seconds.
        let timestamp = b.add_date_field(
            TIMESTAMP,
            DateOptions::default()
                .set_fast()
                .set_precision(DateTimePrecision::Milliseconds),
        );
        // Arrival order, to order entries of the same millisecond; stored for the output.
        let seq = b.add_u64_field(SEQ, FAST | STORED);
        let host = b.add_text_field(HOST, keyword.clone());
        let category = b.add_text_field(CATEGORY, keyword.clone());
        let source = b.add_text_field(SOURCE, keyword.clone());
        let level = b.add_u64_field(LEVEL, number.clone());
        let status = b.add_u64_field(STATUS, number);
        let method = b.add_text_field(METHOD, keyword.clone());
        let client_ip = b.add_text_field(CLIENT_IP, keyword.clone());
        // Full text: words without numbers (see `tokenizer`); positions keep phrase queries
        // ("connection refused") working.
        let words = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(super::tokenizer::LOG_WORDS)
                .set_fieldnorms(false)
                .set_index_option(if word_positions {
                    IndexRecordOption::WithFreqsAndPositions
                } else {
                    IndexRecordOption::Basic
                }),
        );
        let path = b.add_text_field(PATH, words.clone());
        let message = b.add_text_field(MESSAGE, words);
        // The whole GELF document, in the doc store (compressed in blocks); not indexed.
        let gelf = b.add_text_field(GELF, STORED);
        IndexFields {
            schema: b.build(),
            txn_id,
            timestamp,
            seq,
            host,
            category,
            source,
            level,
            status,
            method,
            client_ip,
            path,
            message,
            gelf,
        }
    }

    /// Field handles of an existing partition's schema (same names, possibly older layout).
    pub fn from_schema(schema: Schema) -> Result<IndexFields, tantivy::TantivyError> {
        let f = |name: &str| schema.get_field(name);
        Ok(IndexFields {
            txn_id: f(TXN_ID)?,
            timestamp: f(TIMESTAMP)?,
            seq: f(SEQ)?,
            host: f(HOST)?,
            category: f(CATEGORY)?,
            source: f(SOURCE)?,
            level: f(LEVEL)?,
            status: f(STATUS)?,
            method: f(METHOD)?,
            client_ip: f(CLIENT_IP)?,
            path: f(PATH)?,
            message: f(MESSAGE)?,
            gelf: f(GELF)?,
            schema,
        })
    }

    /// True when both name the same field ids (documents built for one fit the other).
    pub fn same_layout(&self, other: &IndexFields) -> bool {
        let ids = |f: &IndexFields| {
            [
                f.txn_id,
                f.timestamp,
                f.seq,
                f.host,
                f.category,
                f.source,
                f.level,
                f.status,
                f.method,
                f.client_ip,
                f.path,
                f.message,
                f.gelf,
            ]
        };
        ids(self) == ids(other)
    }

    /// Fields a `--query` term without a field name searches.
    pub fn default_query_fields(&self) -> Vec<Field> {
        vec![self.message, self.path, self.txn_id]
    }
}
