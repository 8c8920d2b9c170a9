//! MST node decoder: never panics; a node that decodes re-encodes to the same bytes.
#![no_main]
use engine::mst::{decode_node, encode_node};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (height, bytes) = match data.split_first() {
        Some((h, rest)) if *h < 0x80 => (Some(*h % 8), rest),
        Some((_, rest)) => (None, rest),
        None => return,
    };
    if let Ok(node) = decode_node(bytes, height) {
        assert_eq!(encode_node(&node), bytes);
    }
});
