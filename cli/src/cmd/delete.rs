//! `klyuch delete`.

use crate::attrs::{HexId, parse_hex_id};
use crate::cmd::objects::{ObjectInfo, describe_object, details_text, type_text};
use crate::ctx::{Ctx, TokenSelector};
use crate::error::{CliError, Result};
use crate::pin::UserPinArgs;
use clap::{Args, ValueEnum};
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ClassArg {
    Cert,
    Pubkey,
    Privkey,
    Data,
    Secretkey,
}

impl ClassArg {
    fn class(self) -> ObjectClass {
        match self {
            ClassArg::Cert => ObjectClass::CERTIFICATE,
            ClassArg::Pubkey => ObjectClass::PUBLIC_KEY,
            ClassArg::Privkey => ObjectClass::PRIVATE_KEY,
            ClassArg::Data => ObjectClass::DATA,
            ClassArg::Secretkey => ObjectClass::SECRET_KEY,
        }
    }
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("which").required(true).multiple(true).args(["id", "label"])))]
pub struct DeleteArgs {
    /// Delete the objects with this CKA_ID (hex)
    #[arg(long, value_name = "HEX", value_parser = parse_hex_id)]
    pub id: Option<HexId>,
    /// Delete the objects with this label (with --id too: objects that match both)
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// Only objects of this class
    #[arg(long, value_enum)]
    pub class: Option<ClassArg>,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub pin: UserPinArgs,
}

fn one_line(o: &ObjectInfo) -> String {
    let mut s = format!("{} \"{}\" id {}", o.class, o.label, o.id);
    let t = type_text(o);
    if !t.is_empty() {
        s.push_str(&format!(" ({t})"));
    }
    if o.class == "cert" {
        if let Some(c) = &o.certificate {
            s.push_str(&format!(", subject {}", c.subject));
        }
    } else {
        let d = details_text(o);
        if !d.is_empty() {
            s.push_str(&format!(", {d}"));
        }
    }
    s
}

pub fn run(module: Option<&Path>, sel: &TokenSelector, a: &DeleteArgs) -> Result<()> {
    let ctx = Ctx::open(module)?;
    let (slot, info) = ctx.select(sel)?;
    let session = ctx.open_session(slot, true)?;
    let pin = ctx.user_pin_for(&info, &a.pin.source())?;
    ctx.login(&session, slot, UserType::User, pin.as_ref())?;
    let mut template = Vec::new();
    if let Some(id) = &a.id {
        template.push(Attribute::Id(id.0.clone()));
    }
    if let Some(label) = &a.label {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(c) = a.class {
        template.push(Attribute::Class(c.class()));
    }
    let handles = session.find_objects(&template)?;
    if handles.is_empty() {
        return Err(CliError::new(
            "no object matches; `klyuch objects --login` lists them",
        ));
    }
    let mut objects = Vec::new();
    for h in handles {
        objects.push(describe_object(&session, h)?);
    }
    if !a.yes {
        eprintln!("These objects will be deleted:");
        for o in &objects {
            eprintln!("  {}", one_line(o));
        }
        match crate::cmd::confirm(&format!("Delete {} object(s)?", objects.len())) {
            Some(true) => {}
            Some(false) => return Err(CliError::new("nothing deleted")),
            None => {
                return Err(CliError::usage(
                    "nothing deleted: there is no terminal to confirm on; add --yes",
                ));
            }
        }
    }
    let mut deleted = 0;
    for o in &objects {
        let Some(h) = o.handle else { continue };
        session
            .destroy_object(h)
            .map_err(|e| CliError::from(e).context(format!("deleting {}", one_line(o))))?;
        println!("Deleted {}", one_line(o));
        deleted += 1;
    }
    let _ = session.logout();
    println!("{deleted} object(s) deleted.");
    Ok(())
}
