//! The C ABI: the only code in Klyuch with `unsafe`. Every block carries a `// SAFETY:` line.
//!
//! * [`entry`]: the wrapper every exported function goes through (initialisation check,
//!   application mutex, panic catching, logging, `Result` → `CK_RV`).
//! * [`state`]: the process-wide instance pointer, `C_Initialize`/`C_Finalize`, fork handling.
//! * [`ptr`], [`out_buf`], [`template`], [`mechanism`]: reading C memory by copying after null and
//!   length checks, and the output-buffer contract, each written once.
//! * [`funclist`]: the function lists and interfaces (2.40 and 3.0).
//! * [`fns`]: the exported `C_*` functions, one module per PKCS#11 chapter.

pub mod entry;
pub mod fns;
pub mod funclist;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod mechanism;
pub mod out_buf;
pub mod ptr;
pub mod state;
pub mod template;
