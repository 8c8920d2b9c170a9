//! CAR header, frame and segment index decoders: never panic on arbitrary bytes.
#![no_main]
use engine::segment::{Frames, SegmentIndex, read_frame, read_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = read_header(data);
    let _ = read_frame(data);
    for f in Frames::new(data) {
        if let Ok((_, frame)) = f {
            assert!(frame.block_offset + frame.block.len() == frame.len);
        }
    }
    if let Ok(i) = SegmentIndex::decode(data) {
        assert_eq!(i.encode(), data);
    }
    let _ = SegmentIndex::from_car(data);
});
