//! Generic strict DAG-CBOR reader: never panics; what it accepts is canonical.
#![no_main]
use engine::cbor::{decode_ipld, encode_ipld};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = decode_ipld(data) {
        let mut again = Vec::new();
        encode_ipld(&v, &mut again);
        assert_eq!(again, data);
    }
});
