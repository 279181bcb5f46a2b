//! A browser's session with the web UI, over plain HTTP: what the demo's
//! install flow (Connect to Shopify) needs, since a person does it in a
//! browser; the tests drive the UI with it too.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};

/// A browser's session with the web UI: cookies kept by hand, redirects
/// not followed (so that each hop can be seen). For the install flow, which
/// a person does in a browser.
pub struct Session {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
    /// The CSRF token of the signed-in session.
    pub csrf: String,
}

/// One answer to a [`Session`]: status, `Location` (empty when none),
/// the `Set-Cookie` values as sent, body.
#[derive(Debug, Clone)]
pub struct Hop {
    pub status: u16,
    pub location: String,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Session {
    /// A session at `base` (the server's URL), not signed in.
    pub fn new(base: &str) -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(60))
                .build()?,
            base: base.trim_end_matches('/').to_string(),
            cookies: Vec::new(),
            csrf: String::new(),
        })
    }

    /// Signs `email` in at `base` (the server's URL).
    pub async fn sign_in(base: &str, email: &str, password: &str) -> Result<Self> {
        let mut s = Self::new(base)?;
        let login = s.get("/login").await?;
        let token = csrf_of(&login.body)?;
        let signed = s
            .post(
                "/login",
                &[("csrf", &token), ("email", email), ("password", password)],
            )
            .await?;
        if signed.status != 303 || signed.location != "/" {
            bail!(
                "sign-in of {email} failed: HTTP {} {}",
                signed.status,
                signed.body
            );
        }
        let home = s.get("/").await?;
        s.csrf = csrf_of(&home.body)?;
        Ok(s)
    }

    /// Keeps the cookies `resp` sets; returns its `Set-Cookie` values.
    fn keep(&mut self, resp: &reqwest::Response) -> Vec<String> {
        let set: Vec<String> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_string())
            .collect();
        for v in &set {
            if let Some((k, rest)) = v.split_once('=') {
                let val = rest.split(';').next().unwrap_or("").to_string();
                self.cookies.retain(|(n, _)| n != k);
                self.cookies.push((k.to_string(), val));
            }
        }
        set
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn hop(&mut self, resp: reqwest::Response) -> Result<Hop> {
        let set_cookies = self.keep(&resp);
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        Ok(Hop {
            status,
            location,
            set_cookies,
            body,
        })
    }

    /// GET a path of the server, or a full URL (another host gets no cookies).
    pub async fn get(&mut self, path_or_url: &str) -> Result<Hop> {
        let ours = !path_or_url.contains("://");
        let url = if ours {
            format!("{}{path_or_url}", self.base)
        } else {
            path_or_url.to_string()
        };
        let mut req = self.http.get(url);
        if ours || path_or_url.starts_with(&self.base) {
            req = req.header("cookie", self.cookie_header());
        }
        let resp = req.send().await?;
        self.hop(resp).await
    }

    /// POST a form to a path of the server.
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Result<Hop> {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await?;
        self.hop(resp).await
    }
}

/// The `csrf` hidden field of a page's first form.
pub fn csrf_of(page: &str) -> Result<String> {
    let at = page
        .find("name=\"csrf\" value=\"")
        .ok_or_else(|| anyhow!("no csrf field in the page"))?
        + 19;
    Ok(page[at..].split('"').next().unwrap_or("").to_string())
}
