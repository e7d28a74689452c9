// tilecheck: an independent client of a Synchronicity node's HTTP API, written against Go's
// golang.org/x/mod/sumdb/tlog and sumdb/note (Debian's golang-golang-x-mod-dev). It
//
//  1. fetches /checkpoint and verifies at least T member Ed25519 signature lines with note
//     (the verifier keys come from `synchronicity committee check --vkeys`);
//  2. reads hash tiles from /tile/... through tlog.TileHashReader (which checks every
//     tile against the checkpoint's root) and recomputes the root with tlog.TreeHash;
//  3. fetches /lookup/KEY and checks the entry's inclusion with tlog.CheckRecord, and that
//     the entry bundle tile holds the same entry bytes (KEY "-": a static tiles server,
//     which has no /lookup; every entry bundle is read and hashed into the root instead).
//
// Usage: tilecheck BASE_URL VKEYS_FILE T KEY
// Prints "ok size=N index=I signers=S" (or "ok size=N entries=N signers=S") and exits 0,
// or one line and exits 1.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "tilecheck: "+format+"\n", args...)
	os.Exit(1)
}

func get(url string) []byte {
	resp, err := http.Get(url)
	if err != nil {
		fail("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil || resp.StatusCode != 200 {
		fail("GET %s: status %d %v", url, resp.StatusCode, err)
	}
	return b
}

type tiles struct{ base string }

func (t tiles) Height() int { return 8 }

func (t tiles) ReadTiles(ts []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(ts))
	for i, tile := range ts {
		// Go writes tile/8/L/N[.p/W]; C2SP tlog-tiles drops the height.
		path := strings.Replace(tile.Path(), "tile/8/", "tile/", 1)
		out[i] = get(t.base + "/" + path)
	}
	return out, nil
}

func (t tiles) SaveTiles([]tlog.Tile, [][]byte) {}

func main() {
	if len(os.Args) != 5 {
		fail("usage: tilecheck BASE_URL VKEYS_FILE T KEY")
	}
	base, vkeysFile, key := strings.TrimRight(os.Args[1], "/"), os.Args[2], os.Args[4]
	need, err := strconv.Atoi(os.Args[3])
	if err != nil {
		fail("T: %v", err)
	}
	raw, err := os.ReadFile(vkeysFile)
	if err != nil {
		fail("%v", err)
	}
	var verifiers []note.Verifier
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		v, err := note.NewVerifier(strings.TrimSpace(line))
		if err != nil {
			fail("verifier key %q: %v", line, err)
		}
		verifiers = append(verifiers, v)
	}

	// 1. The checkpoint, with at least T member signatures.
	cpText := get(base + "/checkpoint")
	n, err := note.Open(cpText, note.VerifierList(verifiers...))
	if err != nil {
		fail("checkpoint note: %v", err)
	}
	if len(n.Sigs) < need {
		fail("checkpoint: %d member signatures verified, %d needed", len(n.Sigs), need)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 3 {
		fail("checkpoint text: %q", n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("checkpoint size: %v", err)
	}
	rootBytes, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(rootBytes) != tlog.HashSize {
		fail("checkpoint root: %v", err)
	}
	var root tlog.Hash
	copy(root[:], rootBytes)

	// 2. The root from the tiles.
	tree := tlog.Tree{N: size, Hash: root}
	hr := tlog.TileHashReader(tree, tiles{base})
	got, err := tlog.TreeHash(size, hr)
	if err != nil {
		fail("tree hash from tiles: %v", err)
	}
	if got != root {
		fail("tiles give root %v, the checkpoint says %v", got, root)
	}

	if key == "-" {
		checkBundles(base, size, root)
		fmt.Printf("ok size=%d entries=%d signers=%d\n", size, size, len(n.Sigs))
		return
	}

	// 3. The looked-up entry's inclusion.
	proofText := get(base + "/lookup/" + key)
	sc := bufio.NewScanner(bytes.NewReader(proofText))
	sc.Buffer(make([]byte, 8<<20), 8<<20)
	var entry []byte
	index := int64(-1)
	var proof tlog.RecordProof
	for sc.Scan() {
		l := sc.Text()
		switch {
		case l == "c2sp.org/tlog-proof@v1":
		case strings.HasPrefix(l, "extra "):
			entry, err = base64.StdEncoding.DecodeString(strings.TrimPrefix(l, "extra "))
			if err != nil {
				fail("extra: %v", err)
			}
		case strings.HasPrefix(l, "index "):
			index, err = strconv.ParseInt(strings.TrimPrefix(l, "index "), 10, 64)
			if err != nil {
				fail("index: %v", err)
			}
		case l == "":
			goto done
		default:
			h, err := base64.StdEncoding.DecodeString(l)
			if err != nil || len(h) != tlog.HashSize {
				fail("proof hash %q", l)
			}
			var hh tlog.Hash
			copy(hh[:], h)
			proof = append(proof, hh)
		}
	}
done:
	if index < 0 || entry == nil {
		fail("lookup %s: no index or entry", key)
	}
	// The lookup's inclusion proof, checked against the checkpoint fetched above (the test
	// keeps the log still between the two requests).
	if err := tlog.CheckRecord(proof, size, root, index, tlog.RecordHash(entry)); err != nil {
		fail("entry %d: the lookup's inclusion proof does not verify: %v", index, err)
	}
	// The entry bundle holds the same bytes.
	bundleIndex := index / 256
	w := size - bundleIndex*256
	path := fmt.Sprintf("tile/entries/%s", strings.TrimPrefix(tlog.Tile{H: 8, L: 0, N: bundleIndex, W: 256}.Path(), "tile/8/0/"))
	if w < 256 {
		path += fmt.Sprintf(".p/%d", w)
	}
	bundle := get(base + "/" + path)
	for i := int64(0); i <= index%256; i++ {
		if len(bundle) < 2 {
			fail("entry bundle too short")
		}
		l := int(binary.BigEndian.Uint16(bundle))
		if len(bundle) < 2+l {
			fail("entry bundle truncated")
		}
		if i == index%256 && !bytes.Equal(bundle[2:2+l], entry) {
			fail("entry bundle differs from the looked-up entry")
		}
		bundle = bundle[2+l:]
	}
	fmt.Printf("ok size=%d index=%d signers=%d\n", size, index, len(n.Sigs))
}

// checkBundles reads every entry bundle and checks that the entries' record hashes make
// the checkpoint's tree (tlog.StoredHashes over each record, then tlog.TreeHash).
func checkBundles(base string, size int64, root tlog.Hash) {
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			out[i] = stored[x]
		}
		return out, nil
	})
	for b := int64(0); b*256 < size; b++ {
		w := size - b*256
		path := fmt.Sprintf("tile/entries/%s", strings.TrimPrefix(tlog.Tile{H: 8, L: 0, N: b, W: 256}.Path(), "tile/8/0/"))
		if w < 256 {
			path += fmt.Sprintf(".p/%d", w)
		} else {
			w = 256
		}
		bundle := get(base + "/" + path)
		for i := int64(0); i < w; i++ {
			if len(bundle) < 2 {
				fail("entry bundle %d too short", b)
			}
			l := int(binary.BigEndian.Uint16(bundle))
			if len(bundle) < 2+l {
				fail("entry bundle %d truncated", b)
			}
			hs, err := tlog.StoredHashes(b*256+i, bundle[2:2+l], reader)
			if err != nil {
				fail("stored hashes: %v", err)
			}
			stored = append(stored, hs...)
			bundle = bundle[2+l:]
		}
		if len(bundle) != 0 {
			fail("entry bundle %d has bytes after its %d entries", b, w)
		}
	}
	got, err := tlog.TreeHash(size, reader)
	if err != nil || got != root {
		fail("the entry bundles give root %v (%v), the checkpoint says %v", got, err, root)
	}
}
