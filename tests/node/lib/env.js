'use strict';
// Where the binaries under test are, and the settings every suite shares.
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..', '..');

module.exports = {
	// Set by tests/run-node-tests.sh; the defaults let `node --test` run from a checkout.
	BIN: process.env.DPSEMU_BIN || path.join(ROOT, 'build', 'dpsemu'),
	TOOLS: process.env.DPSEMU_TOOLS || path.join(ROOT, 'build', 'tools'),
	// Not the default scope, so the suites prove DPSEMU_ID_SCOPE is honoured.
	SCOPE: '0ne00AB12CD',
	// The name DPS hands out as assignedHub (DPSEMU_HOSTNAME's default).
	HOSTNAME: 'localhost',
	DEVICE_API_VERSION: '2019-03-31',
	SERVICE_API_VERSION: '2021-10-01',
};
