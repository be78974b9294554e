-- System 2, the warehouse: references like WH-1001, amounts in currency units, status codes.
MODEL (
    name raw.warehouse_shipments,
    kind SEED (path '../../seeds/warehouse_shipments.csv'),
    grain order_ref,
    columns (order_ref VARCHAR, amount DECIMAL(10, 2), status_code VARCHAR, shipped_on DATE)
);
