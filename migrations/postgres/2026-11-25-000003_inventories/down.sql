DROP TABLE packages;
DROP TABLE inventories;
