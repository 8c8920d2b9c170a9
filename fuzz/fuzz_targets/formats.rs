//! Manifest, chunk index, commit, upload template and part decoders: never panic; decoded blocks re-encode exactly.
#![no_main]
use engine::format::{ChunkIndex, Commit, ObjectManifest, PartBody, UploadTemplate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ObjectManifest::decode(data) {
        assert_eq!(m.encode(), data);
    }
    if let Ok(c) = ChunkIndex::decode(data) {
        assert_eq!(c.encode(), data);
        let (offset, len) = c.span();
        let _ = c.locate(offset, offset.saturating_add(len));
    }
    if let Ok(c) = Commit::decode(data) {
        assert_eq!(c.encode(), data);
    }
    if let Ok(p) = PartBody::decode(data) {
        assert_eq!(p.encode(), data);
    }
    if let Ok(t) = UploadTemplate::decode(data) {
        assert_eq!(t.encode(), data);
    }
});
