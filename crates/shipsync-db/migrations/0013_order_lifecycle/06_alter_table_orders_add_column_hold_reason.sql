-- Why a held order waits.
ALTER TABLE orders ADD COLUMN hold_reason TEXT;
