// Every command module registers itself here; importing this file fills the table.
import './driver-info.js';
