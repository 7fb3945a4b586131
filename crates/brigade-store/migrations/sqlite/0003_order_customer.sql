-- Orders remember the customer account that placed them (NULL for orders placed before accounts).
ALTER TABLE orders ADD COLUMN customer_id BLOB REFERENCES accounts (id);
CREATE INDEX orders_by_customer ON orders (customer_id, id);
