-- Store authentication (issue 12). A connection's store authenticates with a
-- legacy access token (connections.store_token, as before), or with an app's
-- client id (in store_json) and client secret (sealed here), whose tokens
-- live in store_tokens. store_status is 'ok' or 'reconnect_needed' (the store
-- refused the credentials; store_error says why).
ALTER TABLE connections ADD COLUMN store_client_secret {BLOB};
