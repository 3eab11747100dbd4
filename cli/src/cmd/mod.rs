//! The subcommands.

pub mod backup;
pub mod bench;
pub mod csr;
pub mod delete;
pub mod import;
pub mod keygen;
pub mod objects;
pub mod pin;
pub mod register;
pub mod sign;
pub mod slots;
pub mod status;
pub mod token;
pub mod verify;

use std::io::{IsTerminal, Write};

/// Ask a yes/no question on the terminal; `None` when there is no terminal to ask on.
pub fn confirm(question: &str) -> Option<bool> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).ok()?;
    Some(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// Token label text from the padded 32-byte field.
pub fn trim_label(s: &str) -> &str {
    s.trim_end_matches([' ', '\0'])
}
