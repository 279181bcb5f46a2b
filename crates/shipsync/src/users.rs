//! `shipsync users create`: web-UI users from the command line (the first
//! administrator cannot be created anywhere else); `shipsync users token`:
//! an API token for a user, for scripts.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, Result, bail};
use shipsync_engine::EngineError;
use shipsync_engine::users::{MIN_PASSWORD_CHARS, Role};

use crate::config::Settings;

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

/// Prints a new API token acting as the user with `email`: the token alone
/// on stdout, so that `TOKEN=$(shipsync users token …)` works.
pub async fn token(
    settings: &Settings,
    email: &str,
    name: &str,
    expires_in_days: Option<i64>,
) -> Result<()> {
    let db = settings.open_database().await?;
    let result = async {
        let user = shipsync_db::users::by_email(&db, &email.trim().to_lowercase())
            .await?
            .ok_or_else(|| {
                anyhow::anyhow!("no user {email}: create it with `shipsync users create`")
            })?;
        match shipsync_engine::users::issue_user_token(&db, &user.id, name, expires_in_days).await {
            Ok((_, token)) => Ok(token),
            Err(EngineError::Invalid { field, message }) => {
                let flag = match field {
                    "expires_in_days" => "--expires-in-days",
                    "name" => "--name",
                    other => other,
                };
                bail!("{flag} {message}; no token was created")
            }
            Err(e) => Err(anyhow::anyhow!("{e}")).context("cannot create the token"),
        }
    }
    .await;
    db.close().await;
    println!("{}", result?);
    Ok(())
}

pub async fn create(
    settings: &Settings,
    role: Role,
    merchants: &[String],
    email: &str,
) -> Result<()> {
    let password = read_password()?;
    let db = settings.open_database().await?;
    let passwords = shipsync_engine::users::PasswordWork::sized_to_cores();
    let result = shipsync_engine::users::create_user(
        &db, &passwords, email, &password, role, merchants, None,
    )
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
