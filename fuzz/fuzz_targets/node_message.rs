#![no_main]
//! Arbitrary bytes as a peer's request or response: never panics; what decodes re-encodes to
//! something that decodes to the same message.
use guixie_node::message::{decode_request, decode_response, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = decode_request(data) {
        assert_eq!(decode_request(&encode(&r)).expect("re-encoded request decodes"), r);
    }
    if let Ok(r) = decode_response(data) {
        assert_eq!(decode_response(&encode(&r)).expect("re-encoded response decodes"), r);
    }
});
