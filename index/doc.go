// Package index knows what every device has: a badger store of records,
// sequences and block locations, the scanner that chunks and hashes files,
// and the fsnotify watcher. It knows nothing of the network.
package index
