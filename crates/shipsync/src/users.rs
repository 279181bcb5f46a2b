//! `shipsync users create`: web-UI users from the command line (the first
//! administrator cannot be created anywhere else).

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, Result, bail};
use shipsync_engine::EngineError;
use shipsync_engine::users::{MIN_PASSWORD_CHARS, Role};

use crate::config::Settings;
use crate::server::redact_url;

/// The password: prompted twice without echo on a terminal, else the first
/// line of stdin (for scripts: `echo "$PW" | shipsync users create …`).
fn read_password() -> Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!(
            "Password (at least {MIN_PASSWORD_CHARS} characters): "
        ))
        .context("cannot read the password from the terminal")?;
        let again = rpassword::prompt_password("Repeat the password: ")
            .context("cannot read the password from the terminal")?;
        if first != again {
            bail!("the two passwords differ; nothing was created, run the command again");
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

pub async fn create(
    settings: &Settings,
    role: Role,
    merchants: &[String],
    email: &str,
) -> Result<()> {
    let password = read_password()?;
    let db = shipsync_db::Db::open(&settings.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                redact_url(&settings.database_url)
            )
        })?;
    let passwords = shipsync_engine::users::PasswordWork::sized_to_cores();
    let result =
        shipsync_engine::users::create_user(&db, &passwords, email, &password, role, merchants)
            .await;
    db.close().await;
    match result {
        Ok(u) => {
            eprintln!(
                "shipsync: created {} {} ({}); sign in at {}/",
                role.label(),
                u.email,
                u.id,
                settings.public_url.trim_end_matches('/')
            );
            Ok(())
        }
        Err(EngineError::Invalid { field, message }) => {
            let flag = match field {
                "merchant_id" => "MERCHANT_ID",
                "merchant_ids" => "--only-merchant",
                "password" => "the password",
                "email" => "EMAIL",
                other => other,
            };
            bail!("{flag} {message}; nothing was created")
        }
        Err(e) => Err(anyhow::anyhow!("{e}")).context("cannot create the user"),
    }
}
