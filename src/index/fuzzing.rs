//! Entry point of the `search_query` fuzz target (cargo fuzz): the search API's handling of
//! untrusted query text, through the same code the API runs. Arbitrary bytes must never panic,
//! overflow the stack or run long: the text is checked against the default [`SearchLimits`];
//! what passes is parsed by tantivy and executed under the time budget on a small in-memory
//! index with the real schema. Not part of the stable API.

use std::sync::OnceLock;

use tantivy::collector::TopDocs;
use tantivy::{DocId, Index, IndexWriter, TantivyDocument};

use super::api::parse_cursor;
use super::limits::{BudgetCollector, Deadline, SearchLimits, nesting_depth};
use super::reader::{PageOrder, parse_user_query, rank};
use super::schema::IndexFields;
use super::tokenizer::{LOG_WORDS, LogWordsTokenizer};

fn index() -> &'static (Index, IndexFields) {
    static I: OnceLock<(Index, IndexFields)> = OnceLock::new();
    I.get_or_init(|| {
        let fields = IndexFields::build(true);
        let index = Index::create_in_ram(fields.schema.clone());
        index
            .tokenizers()
            .register(LOG_WORDS, LogWordsTokenizer::default());
        let mut w: IndexWriter = index.writer(15_000_000).expect("RAM writer");
        for (i, msg) in ["GET /a 200", "POST /b 503 connection refused", "x"]
            .iter()
            .enumerate()
        {
            let mut d = TantivyDocument::new();
            d.add_text(fields.message, *msg);
            d.add_text(fields.txn_id, format!("t{i}"));
            d.add_u64(fields.seq, i as u64);
            d.add_date(
                fields.timestamp,
                tantivy::DateTime::from_timestamp_millis(i as i64),
            );
            w.add_document(d).expect("add");
        }
        w.commit().expect("commit");
        (index, fields)
    })
}

/// Checks, parses and runs `data` as a search query (and as a cursor).
pub fn search_query(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = parse_cursor(&text);
    let limits = SearchLimits::default();
    if limits.check_query(&text).is_err() {
        assert!(text.len() > limits.max_query_bytes || nesting_depth(&text) > limits.max_depth);
        return;
    }
    let (index, fields) = index();
    let Ok(query) = parse_user_query(index, fields, &text) else {
        return;
    };
    let Ok(reader) = index.reader() else {
        return;
    };
    let deadline = Deadline::after(limits.time_budget);
    let top = TopDocs::with_limit(limits.effective_limit(usize::MAX, 10)).custom_score(
        |_: &tantivy::SegmentReader| move |doc: DocId| rank(PageOrder::Newest, None, doc as i64, 0),
    );
    let collector = BudgetCollector {
        inner: top,
        deadline: &deadline,
    };
    let _ = reader.searcher().search(query.as_ref(), &collector);
}

#[cfg(test)]
mod tests {
    #[test]
    fn hostile_inputs_are_handled() {
        for q in [
            "((((((((((((((((((((((GET))))))))))))))))))))))",
            "status:[200 TO",
            "\"unterminated",
            "a AND OR NOT",
            "txn_id:t1 OR message:refused",
            "",
        ] {
            super::search_query(q.as_bytes());
        }
        super::search_query(&"(".repeat(5000).into_bytes());
    }
}
