use Test::More tests => 1;
use Greet;
is(Greet::hello(), "hello from perl");
