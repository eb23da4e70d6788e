"""What every part of the domain shares: ids, time, money, payments, alerts and audits."""
