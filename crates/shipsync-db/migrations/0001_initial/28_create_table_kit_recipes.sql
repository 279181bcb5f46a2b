CREATE TABLE kit_recipes (
    merchant_id   TEXT NOT NULL,
    kit_sku       TEXT NOT NULL,
    component_sku TEXT NOT NULL,
    per_kit       BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, kit_sku, component_sku)
);
