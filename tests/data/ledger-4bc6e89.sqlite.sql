-- The hub's naic_* tables as naic-hub at commit 4bc6e89 made them on sqlite (its
-- metadata.create_all: hub/ledger.py and hub/workshop_store.py of that commit, compiled
-- with SQLAlchemy's sqlite dialect). Generated once; never edit: it is the past.

CREATE TABLE naic_access_requests (
	id INTEGER NOT NULL,
	username VARCHAR(255) NOT NULL,
	identity VARCHAR(255),
	project VARCHAR(255) NOT NULL,
	reason VARCHAR(500) NOT NULL,
	state VARCHAR(16) NOT NULL,
	created_at DATETIME NOT NULL,
	decided_at DATETIME,
	decided_by VARCHAR(255),
	note TEXT NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_naic_access_requests_username ON naic_access_requests (username);

CREATE UNIQUE INDEX naic_one_pending_request ON naic_access_requests (username, project) WHERE state = 'pending';

CREATE TABLE naic_budget_holds (
	id INTEGER NOT NULL,
	username VARCHAR(255) NOT NULL,
	server VARCHAR(255) NOT NULL,
	project VARCHAR(255) NOT NULL,
	gpu_hours FLOAT NOT NULL,
	session_id INTEGER,
	created_at DATETIME NOT NULL,
	expires_at DATETIME NOT NULL,
	released_at DATETIME,
	PRIMARY KEY (id)
);

CREATE INDEX ix_naic_budget_holds_project ON naic_budget_holds (project);

CREATE INDEX ix_naic_budget_holds_released_at ON naic_budget_holds (released_at);

CREATE TABLE naic_gpu_use (
	session_id INTEGER NOT NULL,
	busy_gpu_seconds FLOAT NOT NULL,
	idle_gpu_seconds FLOAT NOT NULL,
	reported_at DATETIME NOT NULL,
	PRIMARY KEY (session_id)
);

CREATE TABLE naic_identities (
	username VARCHAR(255) NOT NULL,
	identity VARCHAR(255) NOT NULL,
	bound_at DATETIME NOT NULL,
	PRIMARY KEY (username),
	UNIQUE (identity)
);

CREATE TABLE naic_sessions (
	id INTEGER NOT NULL,
	username VARCHAR(255) NOT NULL,
	server VARCHAR(255) NOT NULL,
	project VARCHAR(255),
	site VARCHAR(255) NOT NULL,
	job_id VARCHAR(255) NOT NULL,
	gpus INTEGER NOT NULL,
	started_at DATETIME NOT NULL,
	ended_at DATETIME,
	last_seen DATETIME NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_naic_sessions_ended_at ON naic_sessions (ended_at);

CREATE INDEX ix_naic_sessions_project ON naic_sessions (project);

CREATE INDEX ix_naic_sessions_username ON naic_sessions (username);

CREATE TABLE naic_guest_accounts (
	username VARCHAR(255) NOT NULL,
	workshop VARCHAR(40) NOT NULL,
	password_hash VARCHAR(255) NOT NULL,
	issued_at DATETIME NOT NULL,
	expires_at DATETIME NOT NULL,
	password_used_at DATETIME,
	reset_at DATETIME,
	PRIMARY KEY (username)
);

CREATE INDEX ix_naic_guest_accounts_workshop ON naic_guest_accounts (workshop);

CREATE TABLE naic_workshop_seats (
	workshop VARCHAR(40) NOT NULL,
	username VARCHAR(255) NOT NULL,
	seat INTEGER NOT NULL,
	joined_at DATETIME NOT NULL,
	PRIMARY KEY (workshop, username),
	CONSTRAINT naic_one_student_per_seat UNIQUE (workshop, seat)
);

CREATE TABLE naic_workshops (
	name VARCHAR(40) NOT NULL,
	title VARCHAR(120) NOT NULL,
	instructor VARCHAR(255) NOT NULL,
	seats INTEGER NOT NULL,
	starts_at DATETIME NOT NULL,
	ends_at DATETIME NOT NULL,
	site VARCHAR(40) NOT NULL,
	resource VARCHAR(40) NOT NULL,
	gpus INTEGER NOT NULL,
	hours FLOAT NOT NULL,
	project VARCHAR(40),
	material VARCHAR(500) NOT NULL,
	code VARCHAR(64) NOT NULL,
	reservation VARCHAR(64),
	created_at DATETIME NOT NULL,
	ended_at DATETIME,
	awaiting_approval VARCHAR(1000),
	approved_by VARCHAR(255),
	PRIMARY KEY (name),
	UNIQUE (code)
);

CREATE INDEX ix_naic_workshops_instructor ON naic_workshops (instructor);
