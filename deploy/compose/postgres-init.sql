-- One PostgreSQL for the compose federation: the US node's records, and the gateway's log and
-- replay store. In production each agency runs its own database; they never share one.
CREATE DATABASE us_node OWNER comity;
CREATE DATABASE gateway OWNER comity;
