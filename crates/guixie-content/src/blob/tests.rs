use super::*;

#[test]
fn the_root_is_blake3_and_sizes_are_checked() {
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let ob = Outboard::compute(&bytes[..], bytes.len() as u64).unwrap();
    assert_eq!(&ob.blob().root, blake3::hash(&bytes).as_bytes());
    assert_eq!(
        ob.as_bytes().len(),
        64 * (bytes.len() as u64).div_ceil(CHUNK_GROUP_BYTES) as usize - 64
    );
    let root = ob.blob().root_string();
    assert_eq!(Blob::parse_root(&root).unwrap(), ob.blob().root);
    assert!(Blob::parse_root("blake3:00").is_err());
    assert!(matches!(
        Outboard::compute(&bytes[..], bytes.len() as u64 + 1),
        Err(BlobError::WrongSize { found: 100_000, .. })
    ));
    assert!(matches!(
        Outboard::compute(&bytes[..], bytes.len() as u64 - 1),
        Err(BlobError::TooLong { .. })
    ));
    let again = Outboard::from_bytes(ob.blob(), ob.as_bytes().to_vec()).unwrap();
    assert_eq!(again.blob(), ob.blob());
    assert!(Outboard::from_bytes(ob.blob(), vec![0; 3]).is_err());
}

#[test]
fn only_whole_chunk_groups_of_intact_data_are_served() {
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    let ob = Outboard::compute(&bytes[..], bytes.len() as u64).unwrap();
    assert!(ob.encode(&bytes, 0, 50_000).is_ok());
    assert!(ob.encode(&bytes, 16 << 10, 50_000).is_ok());
    for (s, e) in [(1, 50_000), (0, 50_001), (0, 17_000), (5, 5)] {
        assert!(
            matches!(ob.encode(&bytes, s, e), Err(BlobError::BadRange { .. })),
            "{s}..{e}"
        );
    }
    // A damaged copy on the server's disk is caught before a byte goes out.
    let mut damaged = bytes.clone();
    damaged[40_000] ^= 0x80;
    assert!(ob.encode(&damaged, 0, 16 << 10).is_ok());
    assert!(matches!(
        ob.encode(&damaged, 32 << 10, 50_000),
        Err(BlobError::Corrupt(_))
    ));
}
