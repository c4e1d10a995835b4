// boltcheck: bbolt's own code (go.etcd.io/bbolt, as etcd 3.4 vendors it) reading and writing files for
// Plinth's format tests. Built by test/storage/bolt/format.test.ts into a temp dir.
//
//	boltcheck check FILE        open read-only, run tx.Check(), print every bucket and key as JSON
//	boltcheck write FILE MODE   write a file Plinth must read (MODE: plain | nofreelist | map), print its content as JSON
//	boltcheck update FILE       open read-write (as etcd would), put and delete some keys, check, print as JSON
package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Entry is one key of a bucket; Bucket is set for a nested bucket.
type Entry struct {
	Key    string  `json:"k"`
	Value  string  `json:"v,omitempty"`
	Bucket []Entry `json:"b,omitempty"`
	IsB    bool    `json:"isBucket,omitempty"`
}

type Dump struct {
	Buckets []Entry `json:"buckets"`
	TxID    int     `json:"txid"`
	Size    int64   `json:"size"`
	Stats   struct {
		Depth, InlineBuckets, LeafOverflow, BranchPages, Keys int
	} `json:"stats"`
}

func walk(b *bolt.Bucket) []Entry {
	out := []Entry{}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		e := Entry{Key: hex.EncodeToString(k)}
		if v == nil {
			if child := b.Bucket(k); child != nil {
				e.IsB = true
				e.Bucket = walk(child)
			}
		} else {
			e.Value = hex.EncodeToString(v)
		}
		out = append(out, e)
	}
	return out
}

func dump(tx *bolt.Tx) Dump {
	var d Dump
	d.TxID = tx.ID()
	d.Size = tx.Size()
	_ = tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		d.Buckets = append(d.Buckets, Entry{Key: hex.EncodeToString(name), IsB: true, Bucket: walk(b)})
		s := b.Stats()
		if s.Depth > d.Stats.Depth {
			d.Stats.Depth = s.Depth
		}
		d.Stats.InlineBuckets += s.InlineBucketN
		d.Stats.LeafOverflow += s.LeafOverflowN
		d.Stats.BranchPages += s.BranchPageN
		d.Stats.Keys += s.KeyN
		return nil
	})
	return d
}

func check(tx *bolt.Tx) {
	var errs []string
	for err := range tx.Check() {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		fmt.Fprintf(os.Stderr, "tx.Check: %d errors:\n%s\n", len(errs), strings.Join(errs, "\n"))
		os.Exit(3)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func key(i int) []byte { return []byte(fmt.Sprintf("key-%06d", i)) }

func main() {
	if len(os.Args) < 3 {
		fail(fmt.Errorf("usage: boltcheck check|write|update FILE [MODE]"))
	}
	file := os.Args[2]
	switch os.Args[1] {
	case "check":
		db, err := bolt.Open(file, 0400, &bolt.Options{ReadOnly: true})
		if err != nil {
			fail(err)
		}
		defer db.Close()
		if err := db.View(func(tx *bolt.Tx) error {
			check(tx)
			return json.NewEncoder(os.Stdout).Encode(dump(tx))
		}); err != nil {
			fail(err)
		}
	case "write":
		mode := "plain"
		if len(os.Args) > 3 {
			mode = os.Args[3]
		}
		opts := &bolt.Options{NoFreelistSync: mode == "nofreelist"}
		if mode == "map" {
			opts.FreelistType = bolt.FreelistMapType
		}
		db, err := bolt.Open(file, 0600, opts)
		if err != nil {
			fail(err)
		}
		// Many keys (branch pages), a large value (overflow pages), a nested bucket, an inline bucket,
		// an empty value; then deletes and rewrites so the freelist holds pages.
		err = db.Update(func(tx *bolt.Tx) error {
			big, _ := tx.CreateBucket([]byte("big"))
			for i := 0; i < 5000; i++ {
				if err := big.Put(key(i), []byte(strings.Repeat(fmt.Sprint(i%10), 50+i%200))); err != nil {
					return err
				}
			}
			if err := big.Put([]byte("overflow"), []byte(strings.Repeat("o", 20000))); err != nil {
				return err
			}
			small, _ := tx.CreateBucket([]byte("small"))
			_ = small.Put([]byte("a"), []byte("1"))
			_ = small.Put([]byte("empty"), []byte{})
			nested, _ := big.CreateBucket([]byte("nested"))
			for i := 0; i < 300; i++ {
				_ = nested.Put(key(i), []byte("n"))
			}
			inner, _ := nested.CreateBucket([]byte("inner"))
			_ = inner.Put([]byte("x"), []byte("y"))
			return nil
		})
		if err != nil {
			fail(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			big := tx.Bucket([]byte("big"))
			for i := 0; i < 5000; i += 3 {
				_ = big.Delete(key(i))
			}
			return nil
		})
		if err != nil {
			fail(err)
		}
		if err := db.View(func(tx *bolt.Tx) error {
			check(tx)
			return json.NewEncoder(os.Stdout).Encode(dump(tx))
		}); err != nil {
			fail(err)
		}
		if err := db.Close(); err != nil {
			fail(err)
		}
	case "update":
		db, err := bolt.Open(file, 0600, nil)
		if err != nil {
			fail(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("key"))
			if err != nil {
				return err
			}
			for i := 0; i < 1000; i++ {
				if err := b.Put(key(i), []byte(strings.Repeat("u", 100))); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			fail(err)
		}
		if err := db.View(func(tx *bolt.Tx) error {
			check(tx)
			return json.NewEncoder(os.Stdout).Encode(dump(tx))
		}); err != nil {
			fail(err)
		}
		if err := db.Close(); err != nil {
			fail(err)
		}
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}
