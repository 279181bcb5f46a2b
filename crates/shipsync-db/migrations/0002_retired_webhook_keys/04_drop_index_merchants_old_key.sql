DROP INDEX merchants_old_key;
