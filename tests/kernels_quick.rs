mod common;
use pagekv::cache::{KvDtype, ModelGeometry};
use pagekv::verify::{VerifyCase, run_case};

#[test]
fn smoke() {
    for ctx in common::contexts() {
        let mut case = VerifyCase::new(
            ModelGeometry::new("t", 2, 4, 2, 64),
            KvDtype::F32,
            16,
            vec![1, 15, 17, 40],
        );
        case.prefill_chunk = 8;
        let out = run_case(&ctx, &case, false).unwrap();
        println!("{}: {:?}", ctx.describe(), out);
        assert!(out.passed);
    }
}
